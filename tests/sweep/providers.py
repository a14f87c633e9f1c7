"""Area providers for the sweep tests (the cost model's interface, sweep.area).

``area`` is a stand-in cost, a deterministic function of the point -- the bits
multiplied per output element -- so the frontier, the plot and the relative
areas can be tested before and apart from the real cost model. ``slow_area``
is the same, slower, so a test can signal a sweep between two points.
"""

import time


def area(method_config: dict, target: str) -> dict:
    c = method_config
    if c["method"] == "fp16":
        bits = 16 * 16
    elif c["method"] in ("w8a8", "llm-int8"):
        bits = 8 * 8
    else:
        bits = c["w_width"] * c["a_width"]
        if c["method"] in ("lqer", "l2qer"):
            bits += c["rank"] * c["lowrank_width"] ** 2 / 64
    return {"area": float(bits) * (2 if target == "lut6" else 1), "unit": "test bits"}


def slow_area(method_config: dict, target: str) -> dict:
    time.sleep(0.4)
    return area(method_config, target)


def broken_area(method_config: dict, target: str) -> dict:
    if method_config["method"] == "lqer":
        raise ValueError("rank must be a multiple of 16 for this test provider")
    return area(method_config, target)
