"""
Registration and adaptive gamma on synthetic parts
==================================================

The two pre-processing stages of Saeedi & Giusti (2023) on ``skcpcae.datasets`` images:

1. :class:`~skcpcae.preprocessing.ECCRegistrar` undoes a known rigid motion (rotation and
   shift) of a part: the difference to the reference before and after registration, and the
   region of the output that comes from inside the moved image.
2. :class:`~skcpcae.preprocessing.AdaptiveGamma` brings a dark and a bright version of a part
   (and a colour one) to the same object brightness: the object mask it segments (Canny,
   dilation, hole filling, largest region) and the intensity histograms inside it.

Running the script writes the two figures of the user guide to ``docs/_static/``.
"""

from pathlib import Path

import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from skcpcae.datasets import make_parts, rigid_motion  # noqa: E402
from skcpcae.preprocessing import AdaptiveGamma, ECCRegistrar  # noqa: E402

try:
    OUT = Path(__file__).resolve().parents[2] / "docs" / "_static"
except NameError:  # run without a file (e.g. pasted into a console)
    OUT = Path("docs") / "_static"
OUT.mkdir(parents=True, exist_ok=True)

# %%
# Registration
# ------------
# A part, the same part rotated by 4 degrees and shifted by (22, -15) pixels, and the
# registered image. The difference maps use the same colour scale; outside the valid region
# (hatched) the output was filled by repeating the moved image's border.

X, _ = make_parts(6, size=(256, 256), random_state=0)
reference = X[0]
moved, true_warp = rigid_motion(reference, angle=4.0, shift=(22.0, -15.0))

registrar = ECCRegistrar(reference=reference).fit(X)
registered, info = registrar.transform_with_info(moved[None])
registered = registered[0]
valid = registrar.valid_masks(info.warps)[0]
warp = info.warps[0]
angle = np.degrees(np.arctan2(-warp[1, 0], warp[0, 0]))
# the shift in rigid_motion's convention: rotation about the image centre, then the shift
centre = (reference.shape[1] - 1) / 2.0, (reference.shape[0] - 1) / 2.0
shift = warp[:2, 2] - cv2.getRotationMatrix2D(centre, float(angle), 1.0)[:, 2]
mad_before = np.abs(moved - reference).mean() * 255
mad_after = np.abs(registered - reference)[valid].mean() * 255

fig, axes = plt.subplots(1, 5, figsize=(15, 3.4), constrained_layout=True)
panels = [
    (reference, "reference", "gray", (0, 1)),
    (moved, "moved: 4.0°, (22, -15) px", "gray", (0, 1)),
    (registered, f"registered: found {angle:.2f}°, ({shift[0]:.2f}, {shift[1]:.2f}) px",
     "gray", (0, 1)),
    (np.abs(moved - reference), f"|moved - ref|: {mad_before:.1f} grey levels", "magma",
     (0, 0.3)),
    (np.abs(registered - reference), f"|registered - ref|: {mad_after:.1f} grey levels",
     "magma", (0, 0.3)),
]
for ax, (img, title, cmap, (vmin, vmax)) in zip(axes, panels, strict=True):
    ax.imshow(img, cmap=cmap, vmin=vmin, vmax=vmax)
    ax.set_title(title, fontsize=9)
    ax.axis("off")
for ax in axes[2], axes[4]:
    ax.contourf(~valid, levels=[0.5, 1], colors="none", hatches=["////"])
    ax.contour(valid, levels=[0.5], colors="cyan", linewidths=0.8)
fig.suptitle(
    "ECCRegistrar (euclidean, pyramid): mean absolute difference inside the valid region "
    "(cyan)", fontsize=10,
)
fig.savefig(OUT / "preprocessing_registration.png", dpi=72)
print(f"registration: found {angle:.3f} deg, shift {shift.round(3)} (true: 4, (22, -15))")
print(f"MAD before {mad_before:.2f}, after {mad_after:.2f} grey levels")

# %%
# Adaptive gamma
# --------------
# A dark (``x**3``), a bright (``x**0.4``) and a colour version of a part. The cyan outline
# is the object mask; the histograms show the object's intensity before (grey) and after
# (orange) correction, with the target ``C = 0.4`` as a dashed line.

part = X[1]
colour, _ = make_parts(1, size=(256, 256), color=True, random_state=3)
versions = {
    "dark (x**3)": part**3,
    "bright (x**0.4)": part**0.4,
    "colour": colour[0] ** 1.8,
}
fig, axes = plt.subplots(len(versions), 3, figsize=(10, 3.3 * len(versions)),
                         constrained_layout=True)
gamma = AdaptiveGamma()
for row, (name, image) in zip(axes, versions.items(), strict=True):
    batch = image[None]
    gamma.fit(batch)
    corrected, info = gamma.transform_with_info(batch)
    corrected = corrected[0]
    mask = gamma.compute_masks(batch)[0]
    intensity_in = image.mean(axis=2) if image.ndim == 3 else image
    intensity_out = corrected.mean(axis=2) if corrected.ndim == 3 else corrected
    cmap = None if image.ndim == 3 else "gray"
    row[0].imshow(image, cmap=cmap, vmin=0, vmax=1)
    row[0].contour(mask, levels=[0.5], colors="cyan", linewidths=1)
    row[0].set_title(f"{name}: object mean I_mu = {info.object_intensities[0]:.2f}",
                     fontsize=9)
    row[1].imshow(corrected, cmap=cmap, vmin=0, vmax=1)
    row[1].set_title(
        f"corrected: g = {info.gammas[0]:.2f}, object mean "
        f"{intensity_out[mask].mean():.2f}", fontsize=9,
    )
    for ax in row[:2]:
        ax.axis("off")
    bins = np.linspace(0, 1, 51)
    row[2].hist(intensity_in[mask], bins=bins, color="0.6", label="before")
    row[2].hist(intensity_out[mask], bins=bins, color="tab:orange", alpha=0.7, label="after")
    row[2].axvline(gamma.target_intensity, color="k", ls="--", lw=1, label="C = 0.4")
    row[2].set_xlabel("intensity inside the object mask")
    row[2].set_yticks([])
    row[2].legend(fontsize=8, frameon=False)
fig.suptitle("AdaptiveGamma: g = log10(C) / log10(I_mu), I <- I**g", fontsize=10)
fig.savefig(OUT / "preprocessing_gamma.png", dpi=72)
print(f"wrote {OUT / 'preprocessing_registration.png'} and {OUT / 'preprocessing_gamma.png'}")
