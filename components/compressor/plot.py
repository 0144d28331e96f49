"""The compression report's picture: size against accuracy of every candidate."""

from __future__ import annotations

import io

# The object API with the Agg canvas, not pyplot: no display and no global figure state on a
# pipeline worker.
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def size_accuracy_png(report: dict) -> bytes:
    """Draws each candidate of a compression report at (size in KB, test accuracy).

    The SavedModel's accuracy and the lowest accuracy the budget accepts are horizontal lines;
    the chosen candidate is ringed. Drawn in memory, so that the caller can write it to any
    file system.

    Args:
        report: The Compressor's report (`reference`, `accuracy_budget`, `candidates`,
            `chosen`).

    Returns:
        The PNG image.
    """
    reference = report["reference"]["accuracy"]
    floor = reference - report["accuracy_budget"]
    figure = Figure(figsize=(7, 4.5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    for candidate in report["candidates"]:
        size_kb = candidate["size_bytes"] / 1024
        within = candidate["accuracy"] >= floor - 1e-9
        axes.scatter(
            size_kb, candidate["accuracy"], color="tab:green" if within else "tab:red", zorder=3
        )
        axes.annotate(
            candidate["recipe"],
            (size_kb, candidate["accuracy"]),
            textcoords="offset points",
            xytext=(5, 4),
            fontsize=8,
        )
        if candidate["recipe"] == report["chosen"]:
            axes.scatter(
                size_kb,
                candidate["accuracy"],
                s=220,
                facecolors="none",
                edgecolors="black",
                zorder=4,
                label=f"chosen: {candidate['recipe']}",
            )
    axes.axhline(reference, color="tab:blue", linestyle="--", label="SavedModel accuracy")
    axes.axhline(floor, color="tab:gray", linestyle=":", label="lowest accuracy within the budget")
    largest_kb = max((item["size_bytes"] for item in report["candidates"]), default=1024) / 1024
    axes.set_xlim(0, largest_kb * 1.2)  # room for the recipe names
    axes.margins(y=0.15)
    axes.set_xlabel("TFLite model size (KB)")
    axes.set_ylabel(f"test accuracy ({report['test_examples']} examples)")
    axes.set_title("Device model candidates: size against accuracy")
    axes.grid(True, alpha=0.3)
    axes.legend(loc="best", fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
