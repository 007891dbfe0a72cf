"""Reports: terminal tables of a results file, a figure, and the widths the bounds require.

    import mcinit
    from mcinit import report
    res = mcinit.load("sweep.h5")
    print(report.report_text(res))                 # per-layer and failure tables, in words too
    report.plot_report(res, "sweep.pdf")           # (a) layers, (b) last layer, (c), ... failure vs width/eps
    report.plot_report(res, "fig.svg", panels="separate")   # fig-a.svg, fig-b.svg, ...
    print(report.bound_text(0.15, 0.05, depth=10, widths=[1000, 4000]))

Every number says which form it is in: the *norm* form |sqrt(ratio) - 1|, the
*squared* form |ratio - 1| or the *symmetric* form max(sqrt(ratio), 1/sqrt(ratio)) - 1
(docs/design.md section 2).  The ratios themselves (rho_l,
gamma_l) are always the squared ratios of the design notes.

The paper bound shown beside the measurements is PAPER_PROVENANCE; at small
eps and large widths it is not an upper bound (see :func:`paper_caveat`).

:func:`exact_log_density` computes the exact density of ln rho_L for one input
and Gaussian weights (FFT convolution of the layers' log-factor densities), which
the figure draws over the measured histogram.

The numbers of the text come from report_numbers and bound_numbers (the JSON documents of
mcinit report and mcinit bound hold them too: mcinit.documents).

Modules: text (report_text, report_numbers, bound_text, bound_numbers), figures (plot_report, draw_figures,
the formats and the files of separate panels), curves (the
exact density and the bound curves), common (what text and figures share).
"""

from .common import PAPER_PROVENANCE, default_eps
from .curves import exact_log_density, exact_ratio_density
from .figures import FIGURE_FORMATS, PANEL_MODES, PNG_DPI, draw_figures, figure_format, panel_paths, plot_report
from .text import bound_numbers, bound_text, paper_caveat, report_numbers, report_text

__all__ = ["report_text", "report_numbers", "plot_report", "draw_figures", "figure_format", "panel_paths",
           "FIGURE_FORMATS", "PANEL_MODES", "PNG_DPI", "bound_text", "bound_numbers", "default_eps",
           "exact_log_density", "exact_ratio_density", "paper_caveat", "PAPER_PROVENANCE"]
