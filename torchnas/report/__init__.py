"""What people read of a search: the live progress bar, the leaderboard, plots.

Everything here reads a study (its trials) and never writes storage.
"""

from torchnas.report._console import ProgressBar, format_arch, leaderboard
from torchnas.report._plots import plot_history, plot_intermediate, plot_pareto

__all__ = ["ProgressBar", "format_arch", "leaderboard", "plot_history", "plot_intermediate",
           "plot_pareto"]
