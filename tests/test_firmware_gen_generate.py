"""firmware_gen end to end through the Python API: sources, arena, determinism, compile."""

import json
import re
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from firmware_gen_models import tiny_model

from firmware_gen import generate
from firmware_gen.codegen import c_identifier
from firmware_gen.errors import FirmwareGenError

TFLM_PROBE = textwrap.dedent("""
    import sys, numpy as np
    from tflite_micro.python.tflite_micro import runtime
    data = open(sys.argv[1], "rb").read()
    try:
        it = runtime.Interpreter.from_bytes(data, arena_size=int(sys.argv[2]))
        d = it.get_input_details(0)
        it.set_input(np.zeros(tuple(d["shape"]), d["dtype"]), 0)
        it.invoke()
        print("ok")
    except Exception:
        print("fail")
""")


def _array_from_cc(text: str, ident: str) -> bytes:
    body = re.search(rf"g_{ident}_model_data\[\] = \{{(.*?)\}};", text, re.S).group(1)
    return bytes(int(h, 16) for h in re.findall(r"0x([0-9a-f]{2})", body))


def _tflm_outputs(data: bytes, x: np.ndarray) -> np.ndarray:
    from tflite_micro.python.tflite_micro import runtime

    it = runtime.Interpreter.from_bytes(data, arena_size=1 << 20)
    it.set_input(x, 0)
    it.invoke()
    return it.get_output(0)


@pytest.fixture(scope="module")
def conv_model(tmp_path_factory):
    d = tmp_path_factory.mktemp("m")
    path = d / "kws-tiny.tflite"
    path.write_bytes(tiny_model("conv"))
    return path


@pytest.fixture(scope="module")
def generated(conv_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "gen"
    return generate(conv_model, out, targets=["nrf52840"]), out


def test_array_round_trip_and_same_tflm_outputs(conv_model, generated):
    result, out = generated
    ident = result.report["model"]["c_name"]
    assert ident == c_identifier("kws-tiny") and re.fullmatch(r"[A-Za-z_]\w*", ident)
    cc = (out / f"{ident}_model_data.cc").read_text()
    original = conv_model.read_bytes()
    assert _array_from_cc(cc, ident) == original
    assert f"g_{ident}_model_data_len = {len(original)};" in cc
    assert "alignas(16) const unsigned char" in cc
    x = np.random.default_rng(1).integers(-128, 128, (1, 12, 10, 1), dtype=np.int8)
    np.testing.assert_array_equal(
        _tflm_outputs(_array_from_cc(cc, ident), x), _tflm_outputs(original, x)
    )


def test_min_arena_succeeds_and_16_less_fails(conv_model, generated):
    result, _ = generated
    r = result.report
    n = r["min_arena_bytes"]
    assert n % 16 == 0 and n > 0
    assert r["arena"]["recording"]["total_bytes"] > 0
    assert r["recommended_arena_bytes"] >= n
    got = [
        subprocess.run(
            [sys.executable, "-c", TFLM_PROBE, str(conv_model), str(size)],
            capture_output=True,
            text=True,
        ).stdout.strip()
        for size in (n, n - 16)
    ]
    assert got == ["ok", "fail"]


def test_report_contract(generated):
    result, out = generated
    r = json.loads(
        (
            out
            / result.files[result.files.index(f"{result.report['model']['c_name']}_report.json")]
        ).read_text()
    )
    for key in (
        "model_bytes",
        "min_arena_bytes",
        "arena_32bit_estimate_bytes",
        "recommended_arena_bytes",
        "ops",
        "layers",
        "targets",
    ):
        assert key in r
    assert r["model_bytes"] == len(tiny_model("conv"))
    assert r["total_macs"] == sum(layer["macs"] * layer["runs"] for layer in r["layers"])
    assert {layer["runs"] for layer in r["layers"]} == {1}  # no loop: every op runs once
    assert r["total_macs_complete"] is True
    assert len(r["layers"]) == sum(o["count"] for o in r["ops"])
    t = r["targets"][0]
    assert t["key"] == "nrf52840" and t["fits"]
    assert t["ram_needed_bytes"] == r["recommended_arena_bytes"]
    assert t["flash_needed_bytes"] == r["model_bytes"] + r["runtime_code_estimate"]["bytes"]
    assert r["runtime_code_estimate"]["label"] == "estimate"
    h = (out / f"{r['model']['c_name']}_model_data.h").read_text()
    assert f"kTensorArenaSize = {r['recommended_arena_bytes']};" in h
    assert r["model"]["sha256"] in h
    resolver = (out / f"{r['model']['c_name']}_op_resolver.h").read_text()
    assert "MicroMutableOpResolver<kNumOps>" in resolver
    assert f"kNumOps = {len(r['ops'])};" in resolver
    assert resolver.count("resolver.Add") == len(r["ops"])


def test_report_says_when_the_mac_total_is_a_lower_bound(generated):
    from firmware_gen.report import to_markdown

    report = generated[0].report
    line = next(ln for ln in to_markdown(report).splitlines() if "MACs per inference" in ln)
    assert "at least" not in line
    bound = next(
        ln
        for ln in to_markdown(report | {"total_macs_complete": False}).splitlines()
        if "MACs per inference" in ln
    )
    assert "**at least**" in bound and "counted once" in bound


def test_byte_identical_output(conv_model, generated, tmp_path):
    result, out = generated
    again = generate(conv_model, tmp_path / "again", targets=["nrf52840"])
    assert again.files == result.files
    for name in result.files:
        assert (tmp_path / "again" / name).read_bytes() == (out / name).read_bytes(), name


def test_metadata_labels_and_features_compile(conv_model, tmp_path):
    if shutil.which("c++") is None and shutil.which("g++") is None:
        pytest.skip("no host C++ compiler")
    model = tmp_path / "m.tflite"
    model.write_bytes(conv_model.read_bytes())
    labels = ["yes", 'say "hi"', "back\\slash??/"]
    meta = {
        "format": "tfkws-model-metadata",
        "version": 1,
        "labels": labels,
        "feature_config": {
            "kind": "microfrontend",
            "sample_rate": 16000,
            "even_smoothing": 0.025,
            "enable_pcan": True,
        },
    }
    (tmp_path / "m.metadata.json").write_text(json.dumps(meta))
    out = tmp_path / "out"
    result = generate(model, out, name="9 weird-name!", compile=True)
    ident = result.report["model"]["c_name"]
    assert ident == c_identifier("9 weird-name!")
    h = (out / f"{ident}_model_data.h").read_text()
    assert "constexpr int kFeatureSampleRate = 16000;" in h
    assert "constexpr bool kFeatureEnablePcan = true;" in h
    assert result.report["compile"]["compilers"]["host"]["objects"]
    # Link the generated .cc into a program that prints the labels and the bytes back.
    main = tmp_path / "main.cc"
    main.write_text(
        f'#include <cstdio>\n#include "{ident}_model_data.h"\n'
        f"int main() {{ for (int i = 0; i < {ident}_model::kNumLabels; ++i) "
        f'std::printf("%s\\n", {ident}_model::kLabels[i]);\n'
        f"  std::fwrite(g_{ident}_model_data, 1, g_{ident}_model_data_len, stdout); }}\n"
    )
    exe = tmp_path / "prog"
    cxx = shutil.which("c++") or shutil.which("g++")
    subprocess.run(
        [
            cxx,
            "-std=c++17",
            "-Wall",
            "-Werror",
            f"-I{out}",
            str(main),
            str(out / f"{ident}_model_data.cc"),
            "-o",
            str(exe),
        ],
        check=True,
    )
    printed = subprocess.run([str(exe)], capture_output=True, check=True).stdout
    head = "".join(label + "\n" for label in labels).encode()
    assert printed == head + model.read_bytes()


def test_metadata_label_count_must_match(conv_model, tmp_path):
    model = tmp_path / "m.tflite"
    model.write_bytes(conv_model.read_bytes())
    (tmp_path / "m.metadata.json").write_text(
        json.dumps({"format": "tfkws-model-metadata", "labels": ["a", "b"]})
    )
    with pytest.raises(FirmwareGenError, match="2 labels but the model has 3 outputs"):
        generate(model, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(
    shutil.which("arm-none-eabi-g++") is None,
    reason="arm-none-eabi-g++ not installed (Debian package gcc-arm-none-eabi)",
)
def test_compile_for_cortex_m4(conv_model, tmp_path):
    result = generate(conv_model, tmp_path / "out", compile=True)
    arm = result.report["compile"]["compilers"]["arm-none-eabi cortex-m4"]
    sections = next(iter(arm["objects"].values()))
    assert sections[".rodata"] >= result.report["model_bytes"]


def test_identifiers_are_unique_and_valid():
    names = [
        "kws",
        "kws-model",
        "kws_model",
        "kws model",
        "KWS",
        "int",
        "9lives",
        "",
        "__x",
        "a__b",
        "ünïcode",
        "x_",
    ]
    idents = [c_identifier(n) for n in names]
    assert len(set(idents)) == len(names)
    for i in idents:
        assert re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", i) and "__" not in i and not i.endswith("_")
