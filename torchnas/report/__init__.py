"""What people read of a search: the live progress bar, the leaderboard, plots, and the
analysis of why it went as it did (importance, parallel coordinates, slices, timeline,
hypervolume history, trials side by side, a trial's network as a graph).

Everything here reads a study (its trials) and never writes storage.
"""

from torchnas.report._analysis import (
    compare_trials,
    hypervolume_history,
    plot_comparison,
    plot_hypervolume,
    plot_importance,
    plot_parallel,
    plot_slice,
    plot_timeline,
)
from torchnas.report._arch import arch_graph, plot_arch
from torchnas.report._console import ProgressBar, format_arch, leaderboard
from torchnas.report._importance import importance
from torchnas.report._plots import plot_history, plot_intermediate, plot_pareto

__all__ = ["ProgressBar", "arch_graph", "compare_trials", "format_arch", "hypervolume_history",
           "importance", "leaderboard", "plot_arch", "plot_comparison", "plot_history",
           "plot_hypervolume", "plot_importance", "plot_intermediate", "plot_parallel",
           "plot_pareto", "plot_slice", "plot_timeline"]
