#!/usr/bin/env python3
"""Reference (numpy-only) reimplementation of Ultralytics' classification preprocessing at
inference, so that our figures are measured the way an Ultralytics ``-cls`` model is fed and
the Rust element can be checked against it.  No PIL, torchvision or ultralytics is needed.

Ultralytics 8.x ``ClassificationPredictor.preprocess`` converts each BGR frame to RGB, wraps it
in a PIL image and applies ``ultralytics.data.augment.classify_transforms(size)``, which (with
its defaults ``crop_fraction=1.0``, ``mean=(0, 0, 0)``, ``std=(1, 1, 1)``,
``interpolation=BILINEAR``) is the torchvision pipeline

    Resize(size)            # shortest side -> size, long side int(size * long / short)
    CenterCrop(size)        # offsets int(round((dim - size) / 2)), Python (banker's) round
    ToTensor()              # HWC uint8 -> CHW float32 / 255
    Normalize(0, 1)         # no-op

``Resize`` on a PIL image is ``PIL.Image.resize(..., BILINEAR)``: a separable triangle filter
whose support grows with the downscale factor (antialiased when shrinking, plain bilinear with
half-pixel centres when enlarging), horizontal pass first, each pass rounded to uint8 with
22-bit fixed-point coefficients.  ``pil_resize_bilinear`` below reproduces that bit-exactly
(PIL's ``Resample.c``: ``precompute_coeffs``, ``normalize_coeffs_8bpc``,
``ImagingResampleHorizontal_8bpc`` / ``Vertical``).
"""
import math

import numpy as np

PRECISION_BITS = 32 - 8 - 2


def _coeffs(in_size, out_size):
    """(xmin[out], int32 weights[out, ksize]) of PIL's bilinear (triangle) filter."""
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = 1.0 * filterscale
    ksize = int(math.ceil(support)) * 2 + 1
    xmins = np.zeros(out_size, np.int64)
    kk = np.zeros((out_size, ksize), np.int64)
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        ss = 1.0 / filterscale
        xmin = int(center - support + 0.5)
        xmin = max(xmin, 0)
        xmax = int(center + support + 0.5)
        xmax = min(xmax, in_size) - xmin
        w = np.zeros(ksize, np.float64)
        for x in range(xmax):
            t = abs((x + xmin - center + 0.5) * ss)
            w[x] = 1.0 - t if t < 1.0 else 0.0
        ww = w.sum()
        if ww != 0.0:
            w /= ww
        # normalize_coeffs_8bpc: round half away from zero to 22-bit fixed point
        kk[xx] = np.where(w < 0, (-0.5 + w * (1 << PRECISION_BITS)).astype(np.int64),
                          (0.5 + w * (1 << PRECISION_BITS)).astype(np.int64))
        xmins[xx] = xmin
    return xmins, kk


def _pass(img, out_size, axis):
    """One PIL resampling pass over axis (1 = horizontal, 0 = vertical) of an HxWxC uint8 image.
    The fixed-point sums are done in float64 (integers below 2^53, so exact) as a matrix product."""
    in_size = img.shape[axis]
    xmins, kk = _coeffs(in_size, out_size)
    wm = np.zeros((out_size, in_size), np.float64)
    for o in range(out_size):
        n = min(kk.shape[1], in_size - xmins[o])
        wm[o, xmins[o]:xmins[o] + n] = kk[o, :n]
    src = np.moveaxis(img, axis, 0)  # [in, other, C]
    acc = wm @ src.reshape(in_size, -1).astype(np.float64) + (1 << (PRECISION_BITS - 1))
    out = np.clip(np.floor(acc / (1 << PRECISION_BITS)), 0, 255).astype(np.uint8)
    return np.moveaxis(out.reshape((out_size,) + src.shape[1:]), 0, axis)


def pil_resize_bilinear(img, width, height):
    """PIL ``Image.resize((width, height), BILINEAR)`` of an HxWxC uint8 array, bit-exact."""
    out = img
    if width != img.shape[1]:
        out = _pass(out, width, 1)
    if height != img.shape[0]:
        out = _pass(out, height, 0)
    return out


def resized_size(h, w, size):
    """torchvision ``Resize(int)``: (new_h, new_w) with the short side = size."""
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = size, int(size * long / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    return new_h, new_w


def classify_preprocess(rgb, size):
    """Ultralytics ``classify_transforms(size)`` of an HxWx3 uint8 RGB image -> [1, 3, size, size]
    float32 in [0, 1]."""
    h, w = rgb.shape[:2]
    nh, nw = resized_size(h, w, size)
    if (nh, nw) != (h, w):
        rgb = pil_resize_bilinear(rgb, nw, nh)
    top = int(round((nh - size) / 2.0))
    left = int(round((nw - size) / 2.0))
    crop = rgb[top:top + size, left:left + size]
    return np.ascontiguousarray(crop.transpose(2, 0, 1)[None].astype(np.float32) / 255.0)
