"""MLflow's model registry on SQLite, on the workload of
benchmarks/registry_workload.py: N versions with 5 tags each, then 2N alias
moves, then a search by tag, one client call per write, as a CI job would.

    pip install mlflow-skinny          (the test extra has it)
    python benchmarks/peers/mlflow_registry.py [--n 1000]

MLflow writes no audit log, signs nothing and checks no gate, so this is
what the same bookkeeping costs without any of that.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    args = ap.parse_args()
    import mlflow
    from mlflow import MlflowClient

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        client.create_registered_model("bench")
        artifact = Path(tmp) / "model.bin"
        artifact.write_bytes(b"\0" * 2048)
        t0 = time.perf_counter()
        for i in range(args.n):
            client.create_model_version(
                "bench",
                source=artifact.as_uri(),
                tags={f"t{k}": f"v{(i + k) % 10}" for k in range(5)},
            )
        register = time.perf_counter() - t0
        t0 = time.perf_counter()
        for i in range(2 * args.n):
            client.set_registered_model_alias("bench", f"a{i % 10}", str(i % args.n + 1))
        moves = time.perf_counter() - t0
        t0 = time.perf_counter()
        hits = client.search_model_versions("name='bench' and tags.t0 = 'v3'")
        search = time.perf_counter() - t0
    print(f"MLflow {mlflow.__version__} registry on SQLite, N={args.n}")
    print(f"versions/s          {args.n / register:8.0f}")
    print(f"alias moves/s       {2 * args.n / moves:8.0f}")
    print(f"search by tag       {search * 1000:8.1f} ms ({len(hits)} hits)")


if __name__ == "__main__":
    main()
