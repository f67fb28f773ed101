"""What people look at: the notebook panels, plotly figures and the HTML report (they only read results)."""
