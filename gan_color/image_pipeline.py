"""The colorize command's bounded pipeline: decoding and finishing images on a thread pool, in input order, with
the pixels in flight capped so memory follows the largest image rather than the batch or the folder."""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from gan_color.data.images import DECODE_ERRORS, describe_error
from gan_color.gray_input import GrayImage, TooLargeError

# Images decoded or being finished at once are limited to this many pixels together (the first is always allowed:
# a bigger image is processed alone), which bounds memory by the largest image, not by the batch or the folder.
DEFAULT_WINDOW_PIXELS = 48_000_000


class ImagePipeline:
    """Decode and finish tasks on a thread pool (inline with one worker), in order, under a pixel budget."""

    def __init__(self, workers: int, *, window_pixels: int, max_images: int) -> None:
        self.pool = ThreadPoolExecutor(workers) if workers > 1 else None
        self.window_pixels, self.max_images = window_pixels, max_images
        self.pixels, self.images = 0, 0
        self.decoding: deque[tuple[Path, Path, int, Future]] = deque()
        self.finishing: deque[tuple[int, Future]] = deque()

    def __enter__(self) -> ImagePipeline:
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)

    def _submit(self, fn) -> Future:
        if self.pool is not None:
            return self.pool.submit(fn)
        future: Future = Future()
        try:
            future.set_result(fn())
        except BaseException as err:  # noqa: BLE001 - delivered to the caller through the future, as a pool would
            future.set_exception(err)
        return future

    def admits(self, pixels: int) -> bool:
        """Room for one more image: always when nothing is in flight (a big image goes alone)."""
        return self.images == 0 or (self.pixels + pixels <= self.window_pixels and self.images < self.max_images)

    def decode(self, path: Path, output: Path, pixels: int, load) -> None:
        def task() -> GrayImage | str:
            try:
                return load()
            except (*DECODE_ERRORS, MemoryError) as err:
                return str(err) if isinstance(err, TooLargeError) else describe_error(err)

        self.pixels, self.images = self.pixels + pixels, self.images + 1
        self.decoding.append((path, output, pixels, self._submit(task)))

    def next_decoded(self) -> tuple[Path, Path, int, GrayImage | str]:
        path, output, pixels, future = self.decoding.popleft()
        return path, output, pixels, future.result()

    def release(self, pixels: int) -> None:
        self.pixels, self.images = self.pixels - pixels, self.images - 1

    def finish(self, pixels: int, fn) -> None:
        self.finishing.append((pixels, self._submit(fn)))

    def collect(self, *, wait: bool, everything: bool = False) -> list:
        """Results of finished images, in order, releasing their pixels; with `wait`, block for the oldest one
        (for all with `everything`)."""
        results = []
        while self.finishing and (self.finishing[0][1].done() or wait):
            pixels, future = self.finishing.popleft()
            results.append(future.result())
            self.release(pixels)
            wait = everything
        return results
