"""Parity of generation loops through real pytest sessions: ``xframe.check_generation`` on tiny
transformers models trained for a few seconds (their greedy output depends on the prompt and the
KV cache), planted bugs that only the loop shows, bad input, and ``xframe.check_loop``.

The models are trained once per run (``generation_models.trained``, weights kept in a session
directory) and every inner session passes ``export_key``, so each graph is exported once per run
into the shared cache and the other sessions read it back.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

MODELS_FILE = Path(__file__).parent.parent / "generation_models.py"
EXPORT_KEY = "xframe-generation-tests"


@pytest.fixture(scope="session")
def generation_stack(frameworks: None) -> None:
    """transformers and the tiny models' modules imported once, before pytester's in-process runs
    snapshot ``sys.modules`` (they would be imported again in every inner session)."""
    pytest.importorskip("transformers")
    sys.path.insert(0, str(MODELS_FILE.parent))
    from generation_models import ARCHITECTURES, build

    for arch in ARCHITECTURES:
        build(arch)
    from transformers import BertConfig, BertForMaskedLM, PreTrainedTokenizerFast  # noqa: F401


@pytest.fixture(scope="session")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the trained tiny models' weights are kept for every session of this run."""
    return tmp_path_factory.mktemp("generation-weights")


@pytest.fixture
def gen_pytester(xf_pytester: pytest.Pytester, generation_stack: None, weights: Path) -> pytest.Pytester:
    """A pytester project that can build the tiny models (``from generation_models import ...``)."""
    xf_pytester.makepyfile(generation_models=MODELS_FILE.read_text())
    xf_pytester.makepyfile(weights_dir=f"WEIGHTS = {str(weights)!r}\nEXPORT_KEY = {EXPORT_KEY!r}\n")
    return xf_pytester


def _test_file(body: str) -> str:
    return "from generation_models import trained, build, clamped_positions, near_tie, ignores_padding\nfrom weights_dir import WEIGHTS, EXPORT_KEY\n\n" + textwrap.dedent(body)


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["gpt2", "llama", "qwen2", "t5", "bart"])
def test_generation_matches_torch_on_onnxruntime(gen_pytester: pytest.Pytester, arch: str) -> None:
    gen_pytester.makepyfile(test_arch=_test_file(f"""
        def test_generate(xframe):
            # the fixed prompt of distinct tokens makes one row that does not repeat a token (the
            # causal LMs continue its period, the encoder-decoders copy it) whatever hypothesis
            # draws: 6 drawn rows of short prompts may all repeat one token, which -W error fails
            report = xframe.check_generation(
                trained({arch!r}, WEIGHTS), backends=["onnxruntime"], max_examples=6, max_new_tokens=(1, 6), batch=(1, 2),
                prompt_length=(1, 5), prompts=[[5, 9, 13, 17]], export_key=EXPORT_KEY,
            )
            result = report["onnxruntime"]
            assert result.verdict == "passed" and result.examples >= 6
            assert "graphs" in result.onnx and result.worst["logits"].max_abs < 1e-4
    """))
    result = gen_pytester.runpytest("-W", "error::pytest_xframe.VacuousGenerationWarning")
    result.assert_outcomes(passed=1)


@pytest.mark.slow
def test_marker_form_records_every_backend_run(gen_pytester: pytest.Pytester) -> None:
    gen_pytester.makepyfile(test_marked=_test_file("""
        import pytest

        @pytest.mark.xframe_parity(backends=["onnxruntime"], max_examples=4)
        def test_generate(xframe):
            xframe.check_generation(trained("gpt2", WEIGHTS), max_new_tokens=3, export_key=EXPORT_KEY)
    """))
    result = gen_pytester.runpytest("-v", "--xframe-report=report.json")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*test_marked.py::test_generate[[]onnxruntime[]] PASSED*"])
    record = json.loads((gen_pytester.path / "report.json").read_text())["checks"][0]
    assert record["verdict"] == "passed" and record["examples"] == 4 and record["onnx"].startswith("2 graphs")


@pytest.mark.slow
def test_cache_bug_past_a_length_is_named_at_its_first_step_and_kept_for_replay(gen_pytester: pytest.Pytester) -> None:
    # positions 0-7 are right in every graph; from position 8 on, the exported graphs read 7's embedding
    gen_pytester.makepyfile(test_positions=_test_file("""
        def test_generate(xframe):
            model = clamped_positions(trained("gpt2", WEIGHTS), 7)
            xframe.check_generation(model, backends=["onnxruntime"], max_examples=20, prompt_length=4, max_new_tokens=(6, 10),
                                    export_key=EXPORT_KEY)
    """))
    result = gen_pytester.runpytest()
    result.assert_outcomes(failed=1)
    # every case fails (4 prompt tokens and 6+ new ones feed position 8); shrinking finds the fewest
    # new tokens that do: the 6th, fed at position 8, whose logits come from the last step
    result.stdout.fnmatch_lines([
        "GPT2LMHeadModel: generation leaves torch on onnxruntime",
        "[[]onnxruntime[]] first divergent step: * (decode: logits for new token 6 of 6); ran the decode graph: ONNX from dynamo*",
        "  case: row 0 of 1: prompt [[]*[]] (left padding 0); prefill of * column(s) of 4, 6 new token(s)",
        "  tokens there (row 0): torch *, onnxruntime *; torch's top-2 margin *; logits error in that row: max abs *",
        "  max abs error by step: 1: *",
        "*diagnosis: the state fed into that step differed from torch's by at most *",
        "*replay: python -m pytest_xframe replay *",
    ])
    case_dir = next(gen_pytester.path.glob(".pytest_cache/d/xframe-artifacts/*/onnxruntime-*"))
    assert json.loads((case_dir / "case.json").read_text())["loop"]["step"] == "decode: logits for new token 6 of 6"
    replay = subprocess.run([sys.executable, "-m", "pytest_xframe", "replay", str(case_dir)], capture_output=True, text=True)
    assert replay.returncode == 1, replay.stderr  # the step alone, on torch's cache, still differs
    assert "position_ids=int64[1, 1] [[8]]" in replay.stdout


@pytest.mark.slow
def test_shrinking_finds_the_shortest_prompt_that_diverges(gen_pytester: pytest.Pytester) -> None:
    # one new token, so only the prompt feeds positions; from position 4 on the exported graphs read
    # 3's embedding: a prompt of 5 tokens is the shortest that diverges, in a batch of one row
    gen_pytester.makepyfile(test_prompt=_test_file("""
        def test_generate(xframe):
            model = clamped_positions(trained("gpt2", WEIGHTS), 3)
            # a key of its own: the key vouches for the code, and this model differs from the one
            # clamped at 7 only in a number its forward reads
            xframe.check_generation(model, backends=["onnxruntime"], max_examples=20, prompt_length=(1, 8), max_new_tokens=1,
                                    export_key=EXPORT_KEY + "-clamped-at-3")
    """))
    result = gen_pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["  case: row 0 of 1: prompt [[]*[]] (left padding 0); prefill of * column(s) of 5, 1 new token(s)"])


@pytest.mark.slow
def test_near_tie_is_reported_as_a_tie_unless_tie_margin_forbids_it(gen_pytester: pytest.Pytester) -> None:
    # token 63 trails torch's top logit by 1e-5 at every step; the exported graphs put it 2e-5 ahead
    gen_pytester.makepyfile(test_tie=_test_file("""
        import pytest

        @pytest.fixture(scope="module")
        def model():
            return near_tie(trained("gpt2", WEIGHTS), 63)

        def test_within_policy(xframe, model):
            report = xframe.check_generation(model, backends=["onnxruntime"], max_examples=3, max_new_tokens=3, export_key=EXPORT_KEY)
            print("NOTE", report["onnxruntime"].message)

        def test_strict(xframe, model):
            xframe.check_generation(model, backends=["onnxruntime"], max_examples=3, max_new_tokens=3, export_key=EXPORT_KEY,
                                    policy={"tie_margin": 0})
    """))
    result = gen_pytester.runpytest("-s")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*NOTE * near-tie(s) followed torch's token; first at prefill: logits for new token 1 of 3: torch * vs 63, 1e-05 apart in torch's logits (allowed *)",
        "[[]onnxruntime[]] first divergent step: 1 of * (prefill: logits for new token 1 of 3)*",
        "  torch chose token *, the backend 63 (row 0); in torch's logits * leads 63 by 1e-05 > 0 (tie_margin)",
        "  tokens there (row 0): torch *, onnxruntime 63; torch's top-2 margin 1e-05; logits error in that row: max abs 3*e-05",
    ])


@pytest.mark.slow
def test_left_padded_batches_pass_and_a_graph_that_ignores_the_mask_fails_on_a_padded_row(gen_pytester: pytest.Pytester) -> None:
    gen_pytester.makepyfile(test_padding=_test_file("""
        def test_padded(xframe):
            xframe.check_generation(trained("gpt2", WEIGHTS), backends=["onnxruntime"], max_examples=6, batch=(2, 3), prompt_length=(1, 5),
                                    max_new_tokens=3, export_key=EXPORT_KEY)

        def test_mask_dropped(xframe):
            xframe.check_generation(ignores_padding(trained("gpt2", WEIGHTS)), backends=["onnxruntime"], max_examples=20, batch=2,
                                    prompt_length=(1, 4), max_new_tokens=2, export_key=EXPORT_KEY)
    """))
    result = gen_pytester.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    # without padding the two graphs agree; the minimal failing case pads one row by one token
    result.stdout.fnmatch_lines([
        "IgnoresPaddingLM: generation leaves torch on onnxruntime",
        "[[]onnxruntime[]] first divergent step: 1 of * (prefill: logits for new token 1 of 2)*",
        "  case: row * of 2: prompt [[]*[]] (left padding 1); prefill of 2 column(s) of 2, 2 new token(s)",
    ])


@pytest.mark.slow
def test_int8_generation_is_judged_by_token_agreement_and_snr_over_the_steps(gen_pytester: pytest.Pytester) -> None:
    # measured: onnxruntime-int8 (dynamic) keeps 100% of the tiny GPT-2's greedy tokens at 32 dB over the steps
    gen_pytester.makepyfile(test_int8=_test_file("""
        def test_defaults(xframe):
            report = xframe.check_generation(trained("gpt2", WEIGHTS), backends=["onnxruntime-int8"], max_examples=4, max_new_tokens=4,
                                             export_key=EXPORT_KEY)
            print("NOTE", report["onnxruntime-int8"].message)

        def test_demanding(xframe):
            xframe.check_generation(trained("gpt2", WEIGHTS), backends=["onnxruntime-int8"], max_examples=4, max_new_tokens=4,
                                    export_key=EXPORT_KEY, policy={"outputs": {"logits": {"snr_db": 60}}})
    """))
    result = gen_pytester.runpytest("-s")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*NOTE token agreement */* (*%); logits SNR over the steps >= * dB",
        "[[]onnxruntime-int8[]] over the case's steps (int8): outputs over the steps fail their policy: logits: snr * dB < 60.0 dB",
    ])


def test_bad_input_is_a_clear_error_before_anything_is_exported(gen_pytester: pytest.Pytester) -> None:
    gen_pytester.makepyfile(test_bad=_test_file("""
        import torch
        from transformers import BertConfig, BertForMaskedLM

        def test_no_cache(xframe):
            model = BertForMaskedLM(BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)).eval()
            xframe.check_generation(model, backends=["onnxruntime"])

        def test_text_without_tokenizer(xframe):
            xframe.check_generation(build("gpt2"), backends=["onnxruntime"], prompts=["the cat sat"])

        def test_prompt_past_the_position_limit(xframe):
            xframe.check_generation(build("gpt2"), backends=["onnxruntime"], prompt_length=(1, 60), max_new_tokens=8)

        def test_not_a_transformers_model(xframe):
            xframe.check_generation(torch.nn.Linear(2, 2).eval(), backends=["onnxruntime"])

        def test_bad_argument(xframe):
            xframe.check_generation(build("gpt2"), backends=["onnxruntime"], max_new_tokens=0)
    """))
    result = gen_pytester.runpytest()
    result.assert_outcomes(failed=5)
    result.stdout.fnmatch_lines_random([
        "BertForMaskedLM keeps no KV cache: its forward takes no cache (nor past_key_values) or it cannot generate (model BertForMaskedLM)",
        "prompts are text but no tokenizer was given (model GPT2LMHeadModel)",
        "  try:   pass tokenizer= (a transformers tokenizer), or give each prompt as a list of token ids",
        "a case may need 68 positions, past the model's limit of 64 (max_position_embeddings) (model GPT2LMHeadModel)",
        "  cause: longest prompt 60, 8 new token(s)",
        "check_generation takes a transformers model (PreTrainedModel), got Linear (model Linear)",
        "max_new_tokens must be an int or a (low, high) pair within 1..512, got 0 (model GPT2LMHeadModel)",
    ])
    assert "Traceback" not in result.stdout.str()
    assert "xframe-artifacts" not in result.stdout.str() and not list(gen_pytester.path.glob("**/model.onnx"))


@pytest.mark.slow
def test_text_prompts_run_first_through_the_tokenizer(gen_pytester: pytest.Pytester) -> None:
    gen_pytester.makepyfile(test_text=_test_file("""
        from tokenizers import Tokenizer, models, pre_tokenizers
        from transformers import PreTrainedTokenizerFast

        def tokenizer():
            words = {"[PAD]": 0, **{f"w{i}": i for i in range(1, 64)}}
            tok = Tokenizer(models.WordLevel(words, unk_token="[PAD]"))
            tok.pre_tokenizer = pre_tokenizers.Whitespace()
            return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]")

        def test_text(xframe):
            model = trained("gpt2", WEIGHTS)
            report = xframe.check_generation(model, backends=["onnxruntime"], max_examples=1, max_new_tokens=2, tokenizer=tokenizer(),
                                             prompts=["w5 w9 w12", "w7"], export_key=EXPORT_KEY)
            assert report["onnxruntime"].examples == 2  # the prompts, then one drawn case
    """))
    gen_pytester.runpytest().assert_outcomes(passed=1)


@pytest.mark.slow
def test_generation_declared_in_pyproject(gen_pytester: pytest.Pytester) -> None:
    gen_pytester.makepyfile(zoo=_test_file("""
        def gpt2():
            return trained("gpt2", WEIGHTS)
    """))
    gen_pytester.makepyprojecttoml(textwrap.dedent(f"""
        [[tool.xframe.models]]
        factory = "zoo:gpt2"
        generation = {{max_new_tokens = [1, 3], prompt_length = [1, 4]}}
        backends = ["onnxruntime"]
        max_examples = 3
        export_key = "{EXPORT_KEY}"
    """))
    result = gen_pytester.runpytest("-v", "pyproject.toml")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*pyproject.toml::gpt2[[]onnxruntime[]] PASSED*"])


def test_a_generation_table_with_inputs_or_unknown_keys_is_a_collection_error(gen_pytester: pytest.Pytester) -> None:
    gen_pytester.makepyfile(zoo="def gpt2():\n    return None\n")
    gen_pytester.makepyprojecttoml(textwrap.dedent("""
        [[tool.xframe.models]]
        factory = "zoo:gpt2"
        generation = {max_tokens = 3}
    """))
    result = gen_pytester.runpytest("pyproject.toml")
    result.stdout.fnmatch_lines(["*generation in [[][[]tool.xframe.models[]][]] #1 of pyproject.toml must be a table of max_new_tokens, *"])


@pytest.mark.slow
def test_default_initialised_model_warns_that_its_generation_is_vacuous(gen_pytester: pytest.Pytester) -> None:
    gen_pytester.makepyfile(test_vacuous=_test_file("""
        def test_random(xframe):
            xframe.check_generation(build("gpt2"), backends=["onnxruntime"], max_examples=3, max_new_tokens=4, export_key=EXPORT_KEY)
    """))
    result = gen_pytester.runpytest()
    result.assert_outcomes(passed=1, warnings=1)
    # it points at the test's check_generation call
    result.stdout.fnmatch_lines([
        "*test_vacuous.py:*: VacuousGenerationWarning: test_vacuous.py::test_random: the generation check of GPT2LMHeadModel proves little: *",
        "    xframe.check_generation(build(*",
    ])


def test_torch_side_of_the_loop_is_what_generate_produces(generation_stack: None, weights: Path) -> None:
    """The graphs' torch modules (the cache rebuilt from flat tensors each step) generate exactly
    the tokens of the model's own ``generate`` on a left-padded batch."""
    import numpy as np
    import torch

    from generation_models import ARCHITECTURES, trained
    from pytest_xframe.loops.prompts import PromptCase, Seq2SeqCase, left_padded
    from pytest_xframe.loops.transformers import generation_loop, torch_trace

    for arch in ARCHITECTURES:
        model = trained(arch, weights)
        loop = generation_loop(model, arch)
        ids, mask = left_padded([[5, 9, 12, 30], [7, 3]], int(model.config.pad_token_id or 0))
        seq2seq = model.config.is_encoder_decoder
        case = Seq2SeqCase(ids, mask, np.zeros((2, 0), np.int64), 6) if seq2seq else PromptCase(ids, mask, 4, 6)
        trace = torch_trace(loop.graphs, loop.drive, case, arch)
        with torch.no_grad():
            expected = model.generate(torch.from_numpy(ids), attention_mask=torch.from_numpy(mask), max_new_tokens=6, min_new_tokens=6,
                                      do_sample=False, num_beams=1, pad_token_id=int(model.config.pad_token_id or 0))
        generated = expected[:, 1:] if seq2seq else expected[:, ids.shape[1]:]
        assert np.array_equal(trace.tokens(), generated.numpy()), arch


@pytest.mark.slow
def test_check_loop_on_a_recurrent_step(gen_pytester: pytest.Pytester) -> None:
    gen_pytester.makepyfile(test_recurrent="""
        import torch
        from pytest_xframe import Dim, TensorSpec
        from pytest_xframe.loops import greedy

        BATCH = Dim("batch", 1, 3)

        class Cell(torch.nn.Module):
            def __init__(self):
                super().__init__()
                torch.manual_seed(0)
                self.cell, self.out = torch.nn.GRUCell(4, 8), torch.nn.Linear(8, 3)

            def forward(self, x, h):
                h = self.cell(x, h)
                return {"y": self.out(h), "h_next": h}

        class Accumulator(torch.nn.Module):
            # the state grows by x every step; the exported graph saturates it at 1
            def forward(self, x, s):
                s = s + x
                return {"s_next": s.clamp(max=1.0) if torch.onnx.is_in_onnx_export() else s}

        class TokenLM(torch.nn.Module):
            def __init__(self):
                super().__init__()
                torch.manual_seed(1)
                self.emb, self.cell, self.head = torch.nn.Embedding(16, 8), torch.nn.GRUCell(8, 8), torch.nn.Linear(8, 16)

            def forward(self, token, h):
                h = self.cell(self.emb(token[:, 0]), h)
                return {"logits": 5 * self.head(h), "h_next": h}

        def test_rnn(xframe):
            xframe.check_loop(Cell().eval(), {"x": TensorSpec((BATCH, 4)), "h": TensorSpec((BATCH, 8))}, feedback={"h": "h_next"},
                              steps=Dim("steps", 1, 12), backends=["onnxruntime"], max_examples=8)

        def test_token_fed_back(xframe):
            inputs = {"token": TensorSpec((BATCH, 1), "int64", low=0, high=15), "h": TensorSpec((BATCH, 8))}
            xframe.check_loop(TokenLM().eval(), inputs, feedback={"h": "h_next", "token": greedy("logits")}, steps=Dim("steps", 1, 10),
                              backends=["onnxruntime"], max_examples=8)

        def test_saturating_state(xframe):
            inputs = {"x": TensorSpec((BATCH, 2), low=0.2, high=0.3), "s": TensorSpec((BATCH, 2), low=0.0, high=0.1)}
            xframe.check_loop(Accumulator().eval(), inputs, feedback={"s": "s_next"}, steps=Dim("steps", 1, 12),
                              backends=["onnxruntime"], max_examples=30)
    """)
    result = gen_pytester.runpytest()
    result.assert_outcomes(passed=2, failed=1)
    # the state passes 1 at the 4th step at the earliest (0.1 + 3 x 0.3); shrinking finds a case that needs 4 or 5
    result.stdout.fnmatch_lines([
        "Accumulator: the loop leaves torch on onnxruntime",
        "[[]onnxruntime[]] first divergent step: * of *; ran the step graph: ONNX from dynamo*",
        "  max abs error by step: 1: 0  2: 0  3: 0  *",
        "*diagnosis: the step got exactly torch's inputs: the step itself diverges*",
    ])


def test_check_loop_refuses_feedback_it_cannot_follow(xf_pytester: pytest.Pytester) -> None:
    xf_pytester.makepyfile(test_feedback="""
        import torch
        from pytest_xframe import TensorSpec

        class Step(torch.nn.Module):
            def forward(self, x, h):
                return {"h_next": x + h}

        def test_unknown_input(xframe):
            xframe.check_loop(Step().eval(), [TensorSpec((2,)), TensorSpec((2,))], feedback={"state": "h_next"}, backends=["onnxruntime"])

        def test_unknown_output(xframe):
            xframe.check_loop(Step().eval(), [TensorSpec((2,)), TensorSpec((2,))], feedback={"h": "h_new"}, backends=["onnxruntime"])

        def test_bad_steps(xframe):
            xframe.check_loop(Step().eval(), [TensorSpec((2,)), TensorSpec((2,))], feedback={"h": "h_next"}, steps=0, backends=["onnxruntime"])
    """)
    result = xf_pytester.runpytest()
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines_random([
        "feedback feeds input 'state', which the step does not take (model Step)",
        "feedback for input 'h' names output 'h_new', which the step does not return (model Step)",
        "  try:   the step's outputs: h_next",
        "  try:   the step's inputs: h, x",
        "steps must lie in 1..512, got 0 (model Step)",
    ])
