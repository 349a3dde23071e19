"""Check a hand-written backprop on a Dask cluster (joblib's dask backend).

Here a local cluster of two worker processes; for a real cluster, connect the client
to its scheduler instead: ``Client("tcp://scheduler:8786")``. Parameters and the cost
are sent to every worker once. Needs ``pip install "fastcheck[distributed]"``.

    python examples/check_dask.py
"""

from check_serial import cost, gradients, init
from distributed import Client, LocalCluster

import fastcheck as fc

if __name__ == "__main__":
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as cluster, Client(cluster):
        params = init()
        report = fc.check(cost, params, gradients(params), backend="dask", n_jobs=-1)
        print(report)
