"""Run a script in a process of its own with its one CPU split into two logical devices, as the tests of
tf.distribute's MirroredStrategy on CPU do."""

from __future__ import annotations

import json
import subprocess
import sys

# Before anything else touches TensorFlow's devices: they can only be split before they are first used.
TWO_LOGICAL_CPUS = """
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
"""


def run_on_two_logical_cpus(script: str, *args: str) -> dict:
    """Runs `script` (its arguments in sys.argv[1:]) on two logical CPUs and returns the JSON object it printed last."""
    result = subprocess.run([sys.executable, "-c", TWO_LOGICAL_CPUS + script, *args], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])
