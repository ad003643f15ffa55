"""Draw one sample image per digit for the mnist example, without any dataset image.

Each digit is a few pen strokes (lines, arcs, a Bezier curve) in a unit box,
slanted a little, and rendered the way MNIST digits were prepared: white ink on
black, the ink's bounding box scaled to fit a 20x20 box (aspect kept),
anti-aliased, softened by a small blur, then placed in the 28x28 field so that
its centre of mass sits at pixel (14, 14).

Writes samples/digit_<d>.npy (float32 [1,1,28,28] in [0,1]: the model's
`input`) and samples/digit_<d>.pgm (binary P5, for eyes). numpy only; the
output is the same bytes on every run.

    python examples/mnist/make_samples.py [--out DIR]
"""

import argparse
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))

SIZE = 28        # output field
BOX = 20         # the ink's longer side, in pixels, as in MNIST
COM = 14.0       # where MNIST puts the centre of mass (row, column)
PEN = 1.5        # pen radius, pixels
BLUR = 0.6       # gaussian sigma, pixels
SLANT = 0.15     # top of the digit leans right by this much per unit of height
SUPER = 8        # supersampling per pixel for anti-aliasing


def arc(cx, cy, r, t0, t1, rx=None, n=48):
    """Points on an ellipse arc; angles in degrees, counter-clockwise as seen (y grows down)."""
    t = np.radians(np.linspace(t0, t1, n))
    return np.stack([cx + (rx or r) * np.cos(t), cy - r * np.sin(t)], 1)


def line(*pts):
    return np.array(pts, float)


def bezier(p0, p1, p2, n=32):
    t = np.linspace(0, 1, n)[:, None]
    p0, p1, p2 = (np.array(p, float) for p in (p0, p1, p2))
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t ** 2 * p2


# Strokes per digit, as (x, y) polylines in a box about 0.6 wide and 1 tall, y down.
DIGITS = {
    0: [arc(0.3, 0.5, 0.48, 0, 360, rx=0.27)],
    1: [line((0.33, 0.0), (0.3, 1.0))],
    2: [np.concatenate([arc(0.3, 0.27, 0.27, 160, -35), line((0.52, 0.43), (0.04, 1.0), (0.62, 0.98))])],
    3: [arc(0.3, 0.24, 0.24, 150, -90), arc(0.3, 0.74, 0.26, 90, -150)],
    4: [line((0.1, 0.0), (0.02, 0.6), (0.62, 0.6)), line((0.5, 0.05), (0.47, 1.0))],
    5: [np.concatenate([line((0.58, 0.0), (0.12, 0.0), (0.1, 0.45)), arc(0.3, 0.68, 0.3, 130, -150)])],
    6: [np.concatenate([bezier((0.52, 0.0), (0.04, 0.22), (0.03, 0.72)), arc(0.3, 0.72, 0.27, 180, 530)])],
    7: [np.concatenate([line((0.0, 0.02), (0.62, 0.0)), bezier((0.62, 0.0), (0.36, 0.45), (0.26, 1.0))])],
    8: [arc(0.3, 0.24, 0.24, 0, 360, rx=0.22), arc(0.3, 0.73, 0.27, 0, 360, rx=0.28)],
    9: [arc(0.3, 0.27, 0.27, 0, 360), bezier((0.57, 0.27), (0.56, 0.7), (0.5, 1.0))],
}


def segment_distance(px, py, a, b):
    """Distance from each point (px, py) to the segment a-b."""
    d = b - a
    t = ((px - a[0]) * d[0] + (py - a[1]) * d[1]) / max(float(d @ d), 1e-12)
    t = np.clip(t, 0.0, 1.0)
    return np.hypot(px - a[0] - t * d[0], py - a[1] - t * d[1])


def gaussian_blur(img, sigma):
    r = int(np.ceil(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    img = np.apply_along_axis(lambda v: np.convolve(v, k, "same"), 0, img)
    return np.apply_along_axis(lambda v: np.convolve(v, k, "same"), 1, img)


def render(strokes, offset=(0.0, 0.0)):
    """Strokes (already in pixel units) drawn into the 28x28 field, shifted by offset (x, y)."""
    n = SIZE * SUPER
    centres = (np.arange(n) + 0.5) / SUPER  # subpixel centres, in pixel units
    py, px = np.meshgrid(centres, centres, indexing="ij")
    dist = np.full((n, n), np.inf)
    for s in strokes:
        s = s + np.array(offset)
        for a, b in zip(s[:-1], s[1:]):
            dist = np.minimum(dist, segment_distance(px, py, a, b))
    ink = (dist <= PEN).astype(np.float64)
    img = ink.reshape(SIZE, SUPER, SIZE, SUPER).mean((1, 3))  # area coverage per pixel
    img = gaussian_blur(img, BLUR)
    return img / img.max()


def centre_of_mass(img):
    rows, cols = np.mgrid[:SIZE, :SIZE]
    m = img.sum()
    return (img * cols).sum() / m, (img * rows).sum() / m  # (x, y)


def draw(digit):
    """The digit as float32 [28,28] in [0,1], MNIST-style."""
    strokes = [s.copy() for s in DIGITS[digit]]
    for s in strokes:
        s[:, 0] += SLANT * (1.0 - s[:, 1])
    pts = np.concatenate(strokes)
    lo, hi = pts.min(0), pts.max(0)
    # The inked box (centre line plus the pen on each side) gets a longer side of BOX pixels.
    scale = (BOX - 2 * PEN) / max(hi - lo)
    strokes = [(s - lo) * scale + PEN for s in strokes]
    first = render(strokes)
    cx, cy = centre_of_mass(first)
    img = render(strokes, offset=(COM - cx, COM - cy))
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def write_pgm(path, img):
    with open(path, "wb") as f:
        f.write(b"P5\n%d %d\n255\n" % (img.shape[1], img.shape[0]))
        f.write(np.round(img * 255).astype(np.uint8).tobytes())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(HERE, "samples"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for d in range(10):
        img = draw(d)
        np.save(os.path.join(args.out, f"digit_{d}.npy"), img[None, None])
        write_pgm(os.path.join(args.out, f"digit_{d}.pgm"), img)
        print(f"digit {d}: ink {img.sum():.0f}, pixels > 0.5: {(img > 0.5).sum()}")


if __name__ == "__main__":
    main()
