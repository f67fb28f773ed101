"""Try a multi-node study on one machine: start a loopback Ray cluster whose nodes carry instance labels, run a
command against it ({address} is replaced by the cluster's address), shut the cluster down.

    python scripts/ray_local_cluster.py --nodes c7i.large c7a.large -- \\
        .venv/bin/workbench study study.yaml --ray {address}

Every node offers one ``timing_slot`` and ``instance:<name>``, and ``--cpus`` CPUs (default: this machine's CPUs
split between the nodes): a job asks Ray for its node's CPUs and runs at that many threads (rows record them). The
nodes share this machine's cores, so the timings say nothing about the instances named: this is for trying specs
and the cluster path, not for pricing.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", nargs="+", default=["c7i.large", "c7a.large"], help="one instance label per node")
    p.add_argument("--cpus", type=int, default=None,
                   help="CPUs each node advertises (default: this machine's CPUs / nodes, at least 1)")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command; {address} is the cluster's")
    args = p.parse_args(argv)
    command = [a for a in args.command if a != "--"]
    if not command:
        p.error("give the command to run after --, e.g. -- workbench study study.yaml --ray {address}")
    if args.cpus is not None and args.cpus < 1:
        p.error(f"--cpus {args.cpus}: each node needs at least 1 CPU")
    cpus = args.cpus or max(1, (os.cpu_count() or 1) // len(args.nodes))
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # bind every node to 127.0.0.1 (loopback only)
    from ray.cluster_utils import Cluster

    head, *others = args.nodes
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": cpus, "resources": {"timing_slot": 1, f"instance:{head}": 1}})
    try:
        for name in others:
            cluster.add_node(num_cpus=cpus, resources={"timing_slot": 1, f"instance:{name}": 1})
        cluster.wait_for_nodes()
        print(f"Ray cluster at {cluster.address}: nodes {args.nodes}, {cpus} CPUs each", flush=True)
        return subprocess.call([a.replace("{address}", cluster.address) for a in command])
    finally:
        cluster.shutdown()


if __name__ == "__main__":
    sys.exit(main())
