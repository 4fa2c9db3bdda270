#!/usr/bin/env python3
"""A longer differential fuzz run than CI's: analyzerd's tar reader and layer merge against
Go's archive/tar and containerd's applier (tests/runtime_oracle), on generated hostile input.

    python tools/tar_fuzz.py [--streams N] [--images N] [--seed S]   (as root)

Prints the examples run, the distinct header shapes reached and every divergence found.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hypothesis import HealthCheck, given, settings, seed  # noqa: E402

from tests import runtime_oracle  # noqa: E402
from tests.tar_grammar import images, shape, streams  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=3000)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    oracle = runtime_oracle.build(tempfile.mkdtemp(prefix="oracle-"))
    shapes: set[tuple[str, ...]] = set()
    divergences: collections.Counter[str] = collections.Counter()
    outcomes: collections.Counter[str] = collections.Counter()

    @seed(args.seed)
    @settings(max_examples=args.streams, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(streams())
    def run_streams(stream):  # type: ignore[no-untyped-def]
        data = stream.encode()
        shapes.add(shape(stream))
        outcomes["go reads" if runtime_oracle.go_entries(oracle, data)[1] is None else "go fails"] += 1
        for problem in runtime_oracle.compare_entries(oracle, data) + runtime_oracle.compare_entries(oracle, data, 5):
            divergences["stream: " + problem.split("\n")[0][:120]] += 1

    @seed(args.seed)
    @settings(max_examples=args.images, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(images())
    def run_images(layers):  # type: ignore[no-untyped-def]
        for problem in runtime_oracle.compare_image(oracle, layers)[:1]:
            divergences["image: " + problem[:120]] += 1

    run_streams()
    run_images()
    print(f"streams: {args.streams} ({outcomes['go reads']} Go reads, {outcomes['go fails']} Go refuses), "
          f"{len(shapes)} distinct header shapes; images: {args.images}")
    print(f"divergences: {sum(divergences.values())}")
    for problem, count in divergences.most_common():
        print(f"  {count:5d}  {problem}")
    return 1 if divergences else 0


if __name__ == "__main__":
    sys.exit(main())
