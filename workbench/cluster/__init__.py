"""Studies that outgrow one machine: a study spec (``spec``) becomes jobs (``jobs``: one variant at one point on one
hardware target), run here or on a Ray cluster with one timing slot per node (``runner``), merged into one
ResultsTable whose rows each carry their node's environment and instance; ``cheapest`` answers which hardware meets
the SLO for the least money. Ray is imported only when a study runs on it."""
from workbench.cluster.cheapest import cheapest_meeting_slo
from workbench.cluster.runner import run_study
from workbench.cluster.spec import SpecError, StudySpec, Target, load_spec, parse_spec

__all__ = ["StudySpec", "Target", "SpecError", "load_spec", "parse_spec", "run_study", "cheapest_meeting_slo"]
