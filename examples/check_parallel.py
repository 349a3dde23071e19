"""Check a hand-written backprop on two worker processes (joblib, loky).

The same network as ``check_serial.py``. With ``n_jobs``, coordinates are split into
chunks evaluated by worker processes; the numbers are bit for bit those of the serial
check. ``cost`` must be picklable: a module-level function is (cloudpickle also copes
with lambdas, not with a cost that holds a lock or an open file). A job too small to
pay for starting workers runs in this process.

    python examples/check_parallel.py
"""

import numpy as np
from check_serial import cost, gradients, init

import fastcheck as fc

if __name__ == "__main__":  # worker processes import this file: keep the work under the guard
    params = init()
    grads = gradients(params)
    grads["dW2"][3, 7] *= 1.1  # a planted bug: the report names W2[3, 7]
    report = fc.check(cost, params, grads, n_jobs=2)
    print(report)
    print("worst entry:", report.worst(1)[0])
    assert np.isclose(report.difference, fc.check(cost, params, grads).difference, rtol=0, atol=0)
