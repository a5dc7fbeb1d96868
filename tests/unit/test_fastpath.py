import numpy as np
import pytest
from sklearn.linear_model import Lasso
from sklearn.pipeline import Pipeline

from mlstack.features import model_input, preprocessor
from mlstack.serving.fastpath import CompiledPipeline, NotCompilable, probe_frame, verify
from mlstack.training.candidates import FAMILIES, build_model

CASES = [
    ("linear", {}),
    ("linear", {"log_target": True}),
    ("random_forest", {"n_estimators": 10}),
    ("hist_gradient_boosting", {"max_iter": 60}),
    ("hist_gradient_boosting", {"max_iter": 60, "log_target": True, "max_leaf_nodes": 63}),
]


@pytest.fixture(scope="module")
def frame(contract, housing):
    rows = housing.sample(3000, random_state=1)
    return model_input(rows, contract), rows[contract.target.name]


@pytest.mark.parametrize("family, params", CASES, ids=[f"{f}-{i}" for i, (f, _) in enumerate(CASES)])
def test_compiled_pipeline_matches_sklearn(contract, frame, family, params):
    x, y = frame
    model = build_model(contract, FAMILIES[family], {**FAMILIES[family].defaults, **params}, 0).fit(x, y)
    compiled = CompiledPipeline(model, contract)
    assert verify(compiled, model, x) < 1e-9
    assert verify(compiled, model, probe_frame(contract)) < 1e-9
    # the single-record path, including a missing (imputed) value
    record = {**x.iloc[0].to_dict(), "total_bedrooms": None}
    expected = model.predict(model_input(__import__("pandas").DataFrame([record]), contract))[0]
    assert compiled.predict_record(record) == pytest.approx(expected, rel=1e-12)


def test_unknown_estimators_are_not_compiled(contract, frame):
    x, y = frame
    model = Pipeline([("features", preprocessor(contract, scale=True)), ("model", Lasso())]).fit(x, y)
    with pytest.raises(NotCompilable, match="Lasso"):
        CompiledPipeline(model, contract)


def test_verify_catches_a_wrong_compilation(contract, frame):
    x, y = frame
    model = build_model(contract, FAMILIES["hist_gradient_boosting"],
                        {**FAMILIES["hist_gradient_boosting"].defaults, "max_iter": 30}, 0).fit(x, y)
    compiled = CompiledPipeline(model, contract)
    compiled.trees.value[:] = compiled.trees.value * 1.01
    with pytest.raises(NotCompilable, match="differ"):
        verify(compiled, model, x)


def test_malformed_trees_are_refused(contract, frame):
    from mlstack.serving.fastpath import _flatten

    tree = {"feature": np.array([0, 0, 0]), "threshold": np.array([0.5, 0, 0]), "left": np.array([1, -1, -1]),
            "right": np.array([7, -1, -1]), "value": np.zeros(3), "missing_left": np.zeros(3, dtype=bool)}
    with pytest.raises(NotCompilable, match="malformed"):
        _flatten([tree], as_float32=False, scale=1.0, offset=0.0)


def test_warm_loads_the_one_kernel_signature_serving_uses(tmp_path):
    """A slot's master warms the kernel before forking; serving must then compile nothing more (a second
    signature would be compiled again in every worker, privately)."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent("""
        import numpy as np
        from mlstack.contracts import get_contract
        from mlstack.features import model_input
        from mlstack.serving import fastpath
        from mlstack.training.candidates import FAMILIES, build_model

        fastpath.warm()
        warmed = list(fastpath._forest.signatures)
        contract = get_contract("california_housing")
        frame = fastpath.probe_frame(contract)
        x = model_input(frame, contract)
        y = np.random.default_rng(0).uniform(20_000, 500_000, len(x))
        family = FAMILIES["hist_gradient_boosting"]
        model = build_model(contract, family, {**family.defaults, "max_iter": 5}, 0).fit(x, y)
        compiled = fastpath.CompiledPipeline(model, contract)
        compiled.predict_record(contract.example())
        compiled.predict(frame)
        print(len(warmed), len(fastpath._forest.signatures))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**__import__("os").environ, "NUMBA_CACHE_DIR": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "1"]
