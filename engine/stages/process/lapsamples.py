"""A completed lap's samples as the lap-samples stream carries them (keys.lap_samples_stream): the
channel names ("t" first: epoch s) comma-joined, and the values as one little-endian float64 block,
row by row. Decoding gives back the arrays the lap hooks took in-process, bit for bit."""

from __future__ import annotations

import numpy as np


def encode_samples(samples) -> tuple[bytes, bytes]:
    """(channels, values) of a lap's samples (timestamps + every channel column) for the stream."""
    names = ["t", *samples.channels]
    block = np.column_stack([samples.timestamps, samples.values]).astype("<f8", copy=False)
    return ",".join(names).encode(), block.tobytes()


def decode_samples(channels: bytes | str, block: bytes) -> dict[str, np.ndarray]:
    """The arrays `encode_samples` wrote: {"t": epoch s, channel: values}; a clear error if they disagree."""
    names = (channels.decode() if isinstance(channels, bytes) else channels).split(",")
    flat = np.frombuffer(block, dtype="<f8")
    if not names or flat.size % len(names):
        raise ValueError(f"samples: {flat.size} values do not fill {len(names)} channels")
    table = flat.reshape(-1, len(names))
    return {name: table[:, j] for j, name in enumerate(names)}
