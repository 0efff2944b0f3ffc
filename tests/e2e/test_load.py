"""Load through the real glance-api (2 uwsgi processes x 4 threads): 16 concurrent uploads,
then 32 concurrent downloads, of mixed sizes, half the uploads chunked (no size).

Every image's checksum and multihash as glance records them, and every downloaded byte's
md5, must be right; each glance-api process's peak RSS (the kernel's ``VmHWM``) and open
file descriptors are measured, bounded and printed (``pytest -s``).
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor

import pytest
from oslo_utils import units

from datera_glance.simulator import Simulator
from demo.glance_client import GlanceClient
from demo.glance_env import GlanceApi
from tests.plugins.core import Usage
from tests.plugins.glance import Images, app_instance, digests, pattern_stream

pytestmark = [pytest.mark.e2e, pytest.mark.root, pytest.mark.slow]

UPLOADS = 16
DOWNLOADS = 32
SIZES = [
    1, 4095, 64 * units.Ki + 1, units.Mi, 3 * units.Mi + 7, 4 * units.Mi, 4 * units.Mi + 1,
    8 * units.Mi - 1, 10 * units.Mi, 12 * units.Mi + 5, 16 * units.Mi, 20 * units.Mi + 3,
    24 * units.Mi, 32 * units.Mi - 4096, 40 * units.Mi + 9, 48 * units.Mi,
]  # fmt: skip


def test_16_uploads_then_32_downloads(
    glance: GlanceClient, glance_api: GlanceApi, e2e_cluster: Simulator, images: Images
) -> None:
    expected = {seed: digests(pattern_stream(size, seed)) for seed, size in enumerate(SIZES)}
    ids = [images.create(f"load-{seed}") for seed in range(UPLOADS)]

    def upload(seed: int) -> int:
        size = SIZES[seed]
        chunked = seed % 2 == 0
        body = pattern_stream(size, seed)
        return glance.upload(ids[seed], body, size=None if chunked else size).status

    def download(seed: int) -> bool:
        md5 = hashlib.md5()
        total = 0
        for piece in glance.download(ids[seed]):
            md5.update(piece)
            total += len(piece)
        return (md5.hexdigest(), total) == (expected[seed][0], SIZES[seed])

    workers = [pid for pid in glance_api.pids() if pid != glance_api.pid]
    with Usage(workers) as uploading, ThreadPoolExecutor(UPLOADS) as pool:
        assert list(pool.map(upload, range(UPLOADS))) == [204] * UPLOADS
    for seed, image_id in enumerate(ids):
        image = glance.get_image(image_id)
        md5, sha512, size = expected[seed]
        assert (image["status"], image["size"]) == ("active", size)
        assert (image["checksum"], image["os_hash_value"]) == (md5, sha512)
        ai = app_instance(e2e_cluster, image_id)
        assert ai is not None and ai["metadata"]["checksum"] == md5
    with Usage(workers) as downloading, ThreadPoolExecutor(DOWNLOADS) as pool:
        seeds = [seed % UPLOADS for seed in range(DOWNLOADS)]  # each image twice at once
        assert all(pool.map(download, seeds))
    print(
        f"\nglance-api workers, {UPLOADS} uploads: {uploading.report()}"
        f"\n{DOWNLOADS} downloads: {downloading.report()}"
    )
    threads = glance_api.threads
    for pid in workers:
        # Per worker: its threads' transfers (each at most (depth + 2) x 4 MiB) plus glance's
        # own request handling; generous, to catch a per-request leak, not to tune.
        assert uploading.growth(pid) <= threads * 24 * units.Mi + 384 * units.Mi
        assert downloading.growth(pid) <= threads * 24 * units.Mi + 384 * units.Mi
        assert uploading.peak_fds[pid] <= uploading.start_fds[pid] + 8 * threads + 64
        assert downloading.peak_fds[pid] <= downloading.start_fds[pid] + 8 * threads + 64
