"""The benchmark sweep: condense each (dataset, method, ipc, seed) cell once, evaluate it on each
architecture, append every result to ``OUT/results.jsonl``, and print the leaderboard.

    python -m benchmarks.run --ipc 10                       # digits and MUTAG (both embedded)
    python -m benchmarks.run --datasets cifar10 --methods random --ipc 1 10 50 --seeds 0 1 2
    python -m benchmarks.run --config results/graph-mirage/sweep.toml     # a sweep file
    python -m benchmarks.run --executor ray --address HEAD:6379 ...        # on a Ray cluster

A killed sweep resumes: the same command skips every finished cell (ok or failed) and never
rewrites a line already written. Condensed sets are cached under ``OUT/sets`` by a config hash.

- :mod:`.spec`: the typed :class:`SweepSpec`, and the command line and sweep-file reader made from it;
- :mod:`.plan`: the cells a spec asks for and each cell's condenser;
- :mod:`.worker`: condense a set and train it (no writes);
- :mod:`.driver`: the folder, its lock, the only writer, the executors and ``main``.
"""
