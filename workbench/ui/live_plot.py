"""A plotly figure that redraws in place in a notebook as results arrive (the panels' live Pareto plots)."""
from __future__ import annotations


class LivePlot:
    """A plotly figure that redraws in place as data arrives: an ipywidgets Output re-showing a plain Figure.

    plotly 7's FigureWidget (anywidget) draws blank axes in JupyterLab 4.6 here (checked with headless chromium),
    while a Figure shown through plotly's mimetype renderer draws, so live plots in notebooks use this.

    Example:
        >>> live = LivePlot(); live                       # doctest: +SKIP
        >>> live.update(pareto_figure(rows))              # redraws in place
    """

    def __init__(self, figure=None):
        import ipywidgets as w
        import plotly.graph_objects as go

        self.output = w.Output()
        self.figure = figure if figure is not None else go.Figure(layout=dict(template="plotly_white", height=480))
        self.update(self.figure)

    def update(self, figure) -> None:
        from IPython import get_ipython
        from IPython.display import clear_output, display

        self.figure = figure
        if get_ipython() is None:      # plain Python (scripts, tests): nothing to render into
            return
        with self.output:
            clear_output(wait=True)
            display(figure)

    def _repr_mimebundle_(self, **kwargs):
        return self.output._repr_mimebundle_(**kwargs)


__all__ = ["LivePlot"]
