"""What a run prints and draws: the learning curve as text bars, and as a PNG file."""
from __future__ import annotations

import io

from .outputs import write_atomically


def text_curve(hist, floor=None, width=50, max_lines=25):
    """The validation learning curve as text bars (every few epochs when there are many),
    with the noise floor marked '|' where it is known."""
    valid = hist.column("valid")
    lo = min(valid + ([floor] if floor is not None else [])) * 0.95
    hi = max(valid)
    step = max(1, -(-len(valid) // max_lines))

    def col(v):
        return int(round((v - lo) / (hi - lo + 1e-12) * (width - 1)))

    lines = [f"learning curve, validation {hist.metric}" + (f" ('|' marks the noise floor {floor})" if floor else "")]
    for e in list(range(0, len(valid), step)) + ([len(valid) - 1] if (len(valid) - 1) % step else []):
        bar = list("#" * (col(valid[e]) + 1) + " " * (width - col(valid[e]) - 1))
        if floor is not None:
            bar[col(floor)] = "|"
        lines.append(f"  epoch {e + 1:3d} {valid[e]:.4f} {''.join(bar)}{'  best' if e + 1 == hist.best_epoch else ''}")
    return "\n".join(lines)


IMAGE_FORMATS = ("png", "pdf", "svg")


def image_format(path):
    """The image format a path's suffix names (png, pdf or svg); an ``OutputError`` otherwise."""
    from pathlib import Path

    from .errors import OutputError
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in IMAGE_FORMATS:
        raise OutputError(f"--plot {path}: the file name must end in .png, .pdf or .svg (the image format)")
    return suffix


def plot_history(hist, path, title, floor=None):
    """Train, validation and test curves of a ``History`` as an image at ``path`` (.png, .pdf or .svg;
    written atomically). The train curve is the running training-mode metric (dropout on)."""
    fmt = image_format(path)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = hist.column("epoch")
    fig, ax = plt.subplots(figsize=(6, 4))
    for key in ("train", "valid", "test"):
        ax.plot(ep, hist.column(key), label=key)
    if floor is not None:
        ax.axhline(floor, color="gray", ls="--", label="noise floor")
    ax.axvline(hist.best_epoch, color="k", lw=0.5, ls=":", label="best validation epoch")
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"{hist.metric}")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=100)
    plt.close(fig)
    return write_atomically(path, lambda f: f.write(buf.getvalue()), "plot")
