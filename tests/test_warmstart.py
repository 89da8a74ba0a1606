"""Warm start: character tokenizer, tiny Llama, completion-only collator, end-to-end base policies."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from agents.char_tokenizer import build_char_tokenizer
from agents.tiny_model import TinyModelConfig, build_tiny_model
from agents.warmstart import (
    CompletionOnlyCollator,
    Example,
    WarmstartConfig,
    balanced_weights_for,
    checkpoint_signature,
    encode_demonstrations,
    encode_rehearsals,
    make_env,
    same_checkpoint_config,
    training_order,
    warmstart,
)
from polyenv.models import format_prompt

POLY = "PolySet-Polynomial-v0"
COMPETENCE_FLOOR = 0.85  # measured on the suite base: 0.90-0.98 for x != 0 (4% slipped demonstrations by design),
#                          x = 0 1.00; 30 problems x 4 samples per x (about +-0.025), so the floor leaves room


@pytest.fixture(scope="module")
def poly_demos():
    env = make_env(WarmstartConfig(env_id=POLY), "train")
    return env.demonstrations(32, seed=1)


def test_char_tokenizer_round_trip_and_unknown_characters(poly_demos):
    tok = build_char_tokenizer([d.prompt + d.completion for d in poly_demos] + ["y = 3x² − 2"])
    assert 95 + 2 + 4 <= len(tok) <= 120
    for d in poly_demos[:8]:
        for text in (d.prompt, d.completion):
            ids = tok(text)["input_ids"]
            assert len(ids) == len(text)  # one token per character, nothing added
            assert tok.decode(ids) == text
    assert tok.decode(tok("y = 3x² − 2")["input_ids"]) == "y = 3x² − 2"  # seen non-ASCII characters are kept
    ids = tok("aü\x01b")["input_ids"]
    assert ids[1] == ids[2] == tok.unk_token_id and ids[0] != tok.unk_token_id
    assert tok.decode(ids, skip_special_tokens=True) == "ab"
    assert len({tok.pad_token_id, tok.bos_token_id, tok.eos_token_id, tok.unk_token_id}) == 4


def test_char_tokenizer_chat_template_and_reload(tmp_path):
    tok = build_char_tokenizer()
    text = format_prompt(tok, "Find x.")
    assert text == "<s>Find x.\n=> "
    ids = tok(text)["input_ids"]
    assert ids == tok(text, add_special_tokens=False)["input_ids"]
    assert ids[0] == tok.bos_token_id and len(ids) == 1 + len("Find x.\n=> ")
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    assert format_prompt(again, "Find x.") == text
    assert again(text)["input_ids"] == ids
    assert (again.eos_token, again.pad_token, again.padding_side) == ("</s>", "<pad>", "left")


def test_tiny_model_saves_and_reloads(tmp_path):
    tok = build_char_tokenizer()
    model = build_tiny_model(TinyModelConfig(d_model=32, n_layers=2, n_heads=2, max_positions=64), tok, seed=0)
    assert model.config.vocab_size == len(tok) and model.config.eos_token_id == tok.eos_token_id
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    ids = torch.tensor([tok(format_prompt(tok, "(1, 2)"))["input_ids"]])
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).logits, model(ids).logits)


def test_tiny_model_config_rejects_bad_dims():
    with pytest.raises(ValueError, match="n_heads=3"):
        TinyModelConfig(d_model=64, n_heads=3)
    with pytest.raises(ValueError, match="n_layers.*0"):
        TinyModelConfig(n_layers=0)


def test_collator_masks_prompt_and_padding_but_keeps_eos():
    eos = pad = 2  # pad == EOS, as for SmolLM2: EOS must still be a label
    batch = [Example([1, 10, 11], [20, 21, 2]), Example([1, 10], [22, 2])]
    out = CompletionOnlyCollator(pad, pad_to_multiple_of=1)(batch)
    assert out["input_ids"].tolist() == [[1, 10, 11, 20, 21, 2], [1, 10, 22, 2, pad, pad]]
    assert out["attention_mask"].tolist() == [[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]]
    assert out["labels"].tolist() == [[-100, -100, -100, 20, 21, eos], [-100, -100, 22, eos, -100, -100]]
    padded = CompletionOnlyCollator(0, pad_to_multiple_of=8)(batch)
    assert padded["input_ids"].shape == (2, 8) and padded["labels"][:, 6:].eq(-100).all()


def test_encode_demonstrations_conditions_on_format_prompt(poly_demos):
    tok = build_char_tokenizer()
    examples = encode_demonstrations(tok, poly_demos[:4])
    for d, ex in zip(poly_demos, examples):
        assert tok.decode(ex.prompt_ids) == format_prompt(tok, d.prompt)
        assert ex.completion_ids[-1] == tok.eos_token_id
        assert tok.decode(ex.completion_ids[:-1]) == d.completion
    from agents.policy import Policy

    policy_ids = Policy(None, tok).prompt_token_ids([d.prompt for d in poly_demos[:4]])
    assert [ex.prompt_ids for ex in examples] == policy_ids  # trained on exactly the context RL samples from
    with pytest.raises(ValueError, match="longer than the model's context of 20"):
        encode_demonstrations(tok, poly_demos[:1], max_length=20)


def test_training_order_puts_the_balanced_phase_first():
    order = training_order(3, 5, 16, seed=0)  # 16 sequences: 6 balanced (2 passes of 3), then 10 weighted
    assert sorted(order[:3]) == sorted(order[3:6]) == [0, 1, 2]
    assert sorted(order[6:11]) == sorted(order[11:]) == [3, 4, 5, 6, 7]
    only_weighted = training_order(0, 4, 6, seed=0)
    assert len(only_weighted) == 6 and sorted(only_weighted[:4]) == [0, 1, 2, 3]


def test_rehearsals_fill_their_share_of_the_weighted_phase_only():
    plain = training_order(4, 6, 40, seed=3)  # 16 balanced, 24 weighted sequences
    mixed = training_order(4, 6, 40, seed=3, n_rehearsal=4, rehearsal_share=0.25)
    assert mixed[:16] == plain[:16]  # the balanced phase does not depend on the rehearsals
    weighted_phase = mixed[16:]
    rehearsals = [i for i in weighted_phase if i >= 10]
    assert len(weighted_phase) == 24 and len(rehearsals) == 6  # 25% of the weighted phase's 24
    assert all(10 <= i < 14 for i in rehearsals) and sorted(rehearsals[:4]) == [10, 11, 12, 13]  # a full pass first
    assert sorted(i for i in weighted_phase if i < 10) == sorted(list(range(4, 10)) * 3)  # 18 weighted, 3 passes
    assert weighted_phase.index(rehearsals[0]) < 12 or weighted_phase.index(rehearsals[-1]) > 12  # spread, not a tail
    assert training_order(4, 6, 40, seed=3, n_rehearsal=0, rehearsal_share=0.5) == plain  # nothing to rehearse
    with pytest.raises(ValueError, match="rehearsal_share.*1"):
        WarmstartConfig(rehearsal_share=1.0)
    with pytest.raises(ValueError, match="balanced_demos > 0"):
        WarmstartConfig(rehearsal_share=0.5, balanced_demos=0)


def test_strategy_openings_of_worked_solutions():
    from polyenv.domains.countdown import CountdownEnv
    from polyenv.domains.multiplication import MultiplicationEnv
    from polyenv.domains.polynomial import PolynomialEnv

    assert PolynomialEnv.strategy_opening("x = -3: -3*-3 = 9; 2*9 = 18. Answer: (-3, 19)") == "x = -3:"
    assert MultiplicationEnv.strategy_opening("47 * 6 = (40 + 7) * 6; 40*6 = 240, 7*6 = 42, 240 + 42 = 282. "
                                              "Answer: 282") == "47 * 6 = (40 + 7) * 6;"
    assert CountdownEnv.strategy_opening("27 = 13 + 14 [need 14 from 10 4], 14 = 10 + 4 [done]. Answer: 13+10+4"
                                         ) == "27 = 13 + 14"
    assert CountdownEnv.strategy_opening("17 = 5 + 12, 12 = 3 * 4. Answer: 5+3*4") == "17 = 5 + 12"


@pytest.mark.parametrize("env_id, env_kwargs, families", [
    (POLY, {}, ["x=0", "x=-5", "x=4"]),
    ("PolySet-Multiplication-v0", {"p_digits": 2, "q_digits": 1}, ["p-add", "p-sub", "q-sub", "both", "factor"]),
    ("PolySet-Countdown-v0", {"num_numbers": 3, "max_value": 20, "min_target": 5, "max_target": 50,
                              "min_solutions": 2, "bookkeeping": True, "num_test_problems": 50},
     ["add", "sub", "mul", "div"]),
])
def test_rehearsals_give_the_strategy_opening_as_context(env_id, env_kwargs, families):
    """A rehearsal is the demonstration with its strategy opening (what a competence report forces) in the prompt:
    the opening is context (no loss on it), the rest is the target, and opening + rest is the whole, correct,
    demonstration of its family."""
    env = make_env(WarmstartConfig(env_id=env_id, env_kwargs=env_kwargs), "train")
    demos = env.demonstrations(40, strategy_weights={f: 1.0 for f in families}, seed=2)
    tok = build_char_tokenizer([d.prompt + d.completion for d in demos], model_max_length=512)
    rehearsals = encode_rehearsals(tok, env, demos)
    collated = CompletionOnlyCollator(tok.pad_token_id)(rehearsals)
    rng = np.random.default_rng(0)
    for row, (d, ex) in enumerate(zip(demos, rehearsals)):
        prompt, target = tok.decode(ex.prompt_ids), tok.decode(ex.completion_ids[:-1])
        opening = prompt.removeprefix(format_prompt(tok, d.prompt))
        assert prompt.startswith(format_prompt(tok, d.prompt)) and opening and target.strip()
        trained = [t for t in collated["labels"][row].tolist() if t != -100]
        assert tok.decode(trained[:-1]) == target  # the loss is on the rest only
        index = int(d.problem_id.rsplit("/", 1)[1])
        env.reset(options={"index": index})
        result = env.verify([opening + target])[0]
        assert opening + target == d.completion and result.correct
        assert env.strategy_family(result.strategy_key) == d.family
        # the opening is what a competence report forces for that family on that problem
        task = env.problem_in("train", index).task
        assert opening in {env.strategy_prefix(task, d.family, rng) for _ in range(200)}
    assert {d.family for d in demos} == set(families)


def test_balanced_weights_default_to_equal_and_follow_the_config():
    weights = {"x=0": 0.8, "x=1": 0.1, "x=5": 0.1, "x=2": 0.0}
    # default: weight 1 on every family the prior uses (the unnormalised dict the balanced phase always had)
    assert balanced_weights_for(WarmstartConfig(), weights) == {"x=0": 1.0, "x=1": 1.0, "x=5": 1.0}
    cfg = WarmstartConfig(balanced_weights={"x=5": 3.0, "x=1": 0.0})
    assert balanced_weights_for(cfg, weights) == {"x=0": 1.0, "x=5": 3.0}  # omitted keeps 1, 0 drops the family
    with pytest.raises(ValueError, match=r"\['x=2'\].*does not use"):
        balanced_weights_for(WarmstartConfig(balanced_weights={"x=2": 1.0}), weights)
    with pytest.raises(ValueError, match="every family at 0"):
        balanced_weights_for(WarmstartConfig(balanced_weights={"x=0": 0, "x=1": 0, "x=5": 0}), weights)
    with pytest.raises(ValueError, match="balanced_weights.*-1"):
        WarmstartConfig(balanced_weights={"x=0": -1.0})
    with pytest.raises(ValueError, match="slip_rates.*1.5"):
        WarmstartConfig(slip_rates={"x=1": 1.5})
    assert WarmstartConfig().slip_rates is None  # default: no slips, demonstrations as before


def test_balanced_phase_draws_its_families_by_balanced_weights(tmp_path):
    """The balanced demonstrations follow balanced_weights (recorded in warmstart.json); without it they are equal."""
    common = dict(env_id=POLY, d_model=32, n_layers=1, n_heads=2, max_positions=192, num_demos=16, max_steps=1,
                  batch_size=8, eval_problems=0, competence_problems=0, num_threads=1, balanced_demos=800,
                  strategy_weights={"x=0": 0.8, "x=5": 0.2})
    meta = json.loads((warmstart(WarmstartConfig(**common, balanced_weights={"x=5": 3.0},
                                                 output_dir=str(tmp_path / "w"))) / "warmstart.json").read_text())
    assert meta["balanced_weights"] == {"x=0": 0.25, "x=5": 0.75}
    assert abs(meta["balanced_demonstration_family_share"]["x=5"] - 0.75) < 0.05, meta
    equal = json.loads((warmstart(WarmstartConfig(**common, output_dir=str(tmp_path / "e"))) / "warmstart.json"
                        ).read_text())
    assert equal["balanced_weights"] == {"x=0": 0.5, "x=5": 0.5}
    assert abs(equal["balanced_demonstration_family_share"]["x=5"] - 0.5) < 0.05, equal


def test_config_validation_shows_bad_values():
    with pytest.raises(ValueError, match="num_demos.*-5"):
        WarmstartConfig(num_demos=-5)
    with pytest.raises(ValueError, match="split"):
        WarmstartConfig(env_kwargs={"split": "test"})
    with pytest.raises(ValueError, match="strategy_weights.*-1"):
        WarmstartConfig(strategy_weights={"x=0": -1.0})
    with pytest.raises(ValueError, match="learning_rate.*0"):
        WarmstartConfig(learning_rate=0.0)
    with pytest.raises(ValueError, match="unknown env id 'PolySet-Nope-v0'"):
        make_env(WarmstartConfig(env_id="PolySet-Nope-v0"), "train")


def test_tiny_warmstart_end_to_end_then_sft_of_the_saved_model(tmp_path):
    """A tiny warm start through the CLI writes a loadable model dir; that dir then goes through the SFT path."""
    base = tmp_path / "base"
    cmd = [sys.executable, "-m", "agents.warmstart", "--env", POLY, "--d-model", "32", "--n-layers", "1",
           "--n-heads", "2", "--max-positions", "192", "--num-demos", "64", "--balanced-demos", "32", "--max-steps", "6", "--batch-size", "16",
           "--eval-problems", "2", "--eval-samples", "2", "--max-new-tokens", "24", "--num-threads", "1",
           "--competence-problems", "2", "--competence-samples", "3", "--save-steps", "4",
           "--strategy-weights", '{"x=0": 0.5, "x=1": 0.5}', "--output-dir", str(base)]
    out = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "accuracy" in out.stdout
    meta = json.loads((base / "warmstart.json").read_text())
    assert meta["strategy_weights"] == {"x=0": 0.5, "x=1": 0.5}
    assert set(meta["demonstration_family_share"]) == {"x=0", "x=1"} and meta["num_demonstrations"] == 64
    assert meta["num_balanced_demonstrations"] == 32 and meta["train_steps"] == 6
    assert meta["train_steps"] == 6 and meta["train_loss_last"] < meta["train_loss_first"]
    ev = meta["evaluation"]
    assert ev["problems"] == 2 and ev["samples_per_problem"] == 2 and 0.0 <= ev["accuracy"] <= 1.0
    assert ev["test_prompts_in_demonstrations"] == 0
    comp = meta["competence"]
    assert set(comp["families"]) == {"x=0", "x=1"} and comp["samples_per_problem"] == 3
    assert all(row["problems"] == 2 and 0.0 <= row["accuracy"] <= row["on_strategy"] + 1e-9 <= 1.0 + 1e-9
               for row in comp["families"].values())
    assert set(meta["prior"]) == {"x=0", "x=1"} and not (tmp_path / "base.partial").exists()
    assert meta["competence_note"] is None
    tok = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base)
    assert model.config.num_hidden_layers == 1 and model.config.vocab_size == len(tok)
    assert tok.eos_token_id in (model.generation_config.eos_token_id if isinstance(
        model.generation_config.eos_token_id, list) else [model.generation_config.eos_token_id])

    tuned = warmstart(WarmstartConfig(env_id=POLY, model=str(base), num_demos=32, balanced_demos=0, max_steps=2, batch_size=16,
                                      learning_rate=1e-3, eval_problems=1, eval_samples=2, max_new_tokens=8,
                                      num_threads=1, output_dir=str(tmp_path / "tuned")))
    meta2 = json.loads((tuned / "warmstart.json").read_text())
    assert meta2["config"]["model"] == str(base) and meta2["num_parameters"] == meta["num_parameters"]
    reloaded = AutoModelForCausalLM.from_pretrained(tuned)
    changed = [not torch.equal(a, b) for a, b in zip(model.parameters(), reloaded.parameters())]
    assert all(changed)


@pytest.mark.slow
def test_suite_polynomial_base_is_competent_but_biased(tmp_path):
    """The synthetic suites' Polynomial warm start (~30 CPU-minutes): every x in -5..5 executed when forced, x = 0
    the favourite and the most reliable. Thresholds sit below the measured values written in
    results/synthetic-cpu/README.md."""
    from benchmarks.suites import POLYNOMIAL

    cfg = {**POLYNOMIAL.warmstart, "env_id": POLYNOMIAL.env_id, "env_kwargs": POLYNOMIAL.env_kwargs}
    path = warmstart(WarmstartConfig(**cfg, output_dir=str(tmp_path / "poly"), num_threads=1))
    meta = json.loads((path / "warmstart.json").read_text())
    competence = {f: row["accuracy"] for f, row in meta["competence"]["families"].items()}
    assert set(competence) == {f"x={x}" for x in range(-5, 6)}
    assert min(competence.values()) >= COMPETENCE_FLOOR, competence
    assert competence["x=0"] >= 0.99 and competence["x=0"] > sum(competence.values()) / len(competence), competence
    prior = meta["prior"]
    assert prior["x=0"] >= 0.6 and max(v for f, v in prior.items() if f != "x=0") <= 0.08, prior


def test_competence_report_forces_each_strategy_with_its_prefix():
    from agents.warmstart import competence_report, format_competence

    env = make_env(WarmstartConfig(env_id="PolySet-Multiplication-v0", env_kwargs={"p_digits": 2, "q_digits": 1}),
                   "test")
    demos = env.demonstrations(16, strategy_weights={"p-add": 1.0}, seed=0)
    tok = build_char_tokenizer([d.prompt + d.completion for d in demos], model_max_length=256)
    model = build_tiny_model(TinyModelConfig(d_model=32, n_layers=1, n_heads=2, max_positions=256), tok, seed=0)
    seen = []
    verify = env.verify
    env.verify = lambda gens: seen.extend(gens) or verify(gens)  # what the report scores
    report = competence_report(model, tok, env, ["p-add", "q-add"], num_problems=2, samples=2, max_new_tokens=4)
    # a one-digit q cannot be split additively: no problem has a q-add strategy
    assert report["families"]["q-add"] == {"accuracy": None, "on_strategy": None, "problems": 0}
    row = report["families"]["p-add"]
    assert row["problems"] == 2 and row["accuracy"] == 0.0  # a random model after 4 characters cannot be right
    assert len(seen) == 4 and all(re.match(r"\d+ \* (\d) = \(\d+ [+-] \d+\) \* \1;.{0,4}$", g) for g in seen), seen
    assert report["min_accuracy"] == 0.0 and "p-add" in format_competence(report, {"p-add": 0.9})
    # Countdown forces a family by the first line of a worked solution, whose operator is the family's
    cd = make_env(WarmstartConfig(env_id="PolySet-Countdown-v0", env_kwargs={
        "num_numbers": 4, "max_value": 12, "min_target": 5, "max_target": 50, "min_solutions": 3,
        "num_test_problems": 20}), "test")
    seen.clear()
    verify_cd = cd.verify
    cd.verify = lambda gens: seen.extend(gens) or verify_cd(gens)
    report = competence_report(model, tok, cd, ["sub", "single"], num_problems=2, samples=2, max_new_tokens=4)
    assert report["families"]["single"]["problems"] == 0  # the target is never one of the numbers
    assert report["families"]["sub"]["problems"] == 2
    assert len(seen) == 4 and all(re.match(r"\d+ = \d+ - \d+.{0,4}$", g) for g in seen), seen

    class NoPrefixEnv:  # an env that cannot open a completion with a strategy
        num_problems = 3

    assert competence_report(model, tok, NoPrefixEnv(), ["add"]) is None
    from agents.warmstart import competence_note

    assert "NoPrefixEnv cannot force a strategy" in competence_note(NoPrefixEnv(), None)
    assert competence_note(env, report) is None and competence_note(None, None) is None


def test_competence_curve_is_recorded_without_changing_training(tmp_path):
    """curve_steps checks competence during training: rows at every curve step (balanced phase, then weighted) plus
    the final report, in warmstart.json and competence_curve.csv; the trained weights are the same as without it."""
    common = dict(env_id="PolySet-Multiplication-v0", env_kwargs={"p_digits": 2, "q_digits": 1}, d_model=32,
                  n_layers=1, n_heads=2, max_positions=256, num_demos=64, balanced_demos=32, max_steps=6,
                  batch_size=16, eval_problems=0, competence_problems=2, competence_samples=2, max_new_tokens=8,
                  num_threads=1, strategy_weights={"p-add": 0.5, "q-sub": 0.5})
    plain = warmstart(WarmstartConfig(**common, output_dir=str(tmp_path / "plain")))
    curved = warmstart(WarmstartConfig(**common, curve_steps=2, curve_problems=1, output_dir=str(tmp_path / "curve")))
    meta = json.loads((curved / "warmstart.json").read_text())
    curve = meta["competence_curve"]
    # 96 sequences, 32 balanced first: steps 1-2 are the balanced phase
    assert [(r["step"], r["phase"], r["samples_per_family"]) for r in curve] == [
        (2, "balanced", 2), (4, "weighted", 2), (6, "final", 4)]
    assert all(set(r["accuracy"]) == {"p-add", "q-sub"} for r in curve)
    assert curve[-1]["accuracy"] == {f: row["accuracy"] for f, row in meta["competence"]["families"].items()}
    lines = (curved / "competence_curve.csv").read_text().splitlines()
    assert lines[0] == "step,phase,p-add,q-sub,samples_per_family" and len(lines) == 4
    assert lines[1].startswith("2,balanced,") and lines[3].startswith("6,final,")
    assert json.loads((plain / "warmstart.json").read_text())["competence_curve"] is None
    assert not (plain / "competence_curve.csv").exists()
    a = AutoModelForCausalLM.from_pretrained(plain)
    b = AutoModelForCausalLM.from_pretrained(curved)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))


def test_warmstart_with_rehearsals_records_them(tmp_path):
    common = dict(env_id="PolySet-Multiplication-v0", env_kwargs={"p_digits": 2, "q_digits": 1}, d_model=32,
                  n_layers=1, n_heads=2, max_positions=256, num_demos=64, balanced_demos=32, max_steps=6,
                  batch_size=16, eval_problems=0, competence_problems=0, num_threads=1,
                  strategy_weights={"p-add": 0.9, "q-sub": 0.1})
    meta = json.loads((warmstart(WarmstartConfig(**common, rehearsal_share=0.25, output_dir=str(tmp_path / "r")))
                       / "warmstart.json").read_text())
    # 96 sequences: 32 balanced, then 64 in the weighted phase of which a quarter rehearse
    assert meta["rehearsal_share"] == 0.25 and meta["rehearsal_sequences"] == 16
    plain = json.loads((warmstart(WarmstartConfig(**common, output_dir=str(tmp_path / "p"))) / "warmstart.json"
                        ).read_text())
    assert plain["rehearsal_share"] == 0.0 and plain["rehearsal_sequences"] == 0


def test_a_build_resumed_from_the_balanced_phase_of_another_rehearsal_share_equals_one_from_scratch(tmp_path,
                                                                                                   monkeypatch):
    """The balanced phase does not depend on rehearsal_share, so variants of the skewed phase can share it: resuming
    a checkpoint taken at the end of the balanced phase of a build without rehearsals, under a config with them, ends
    with the same weights as that config built from scratch."""
    import shutil

    import transformers

    import agents.warmstart as ws

    common = dict(env_id="PolySet-Multiplication-v0", env_kwargs={"p_digits": 2, "q_digits": 1}, d_model=32,
                  n_layers=1, n_heads=2, max_positions=256, num_demos=160, balanced_demos=160, max_steps=20,
                  batch_size=16, eval_problems=0, competence_problems=0, num_threads=1, save_steps=5,
                  strategy_weights={"p-add": 0.9, "q-sub": 0.1})  # 320 sequences: steps 1-10 are the balanced phase

    class StopAtTheEndOfTheBalancedPhase(transformers.TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if state.global_step == 10:
                raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(ws, "hf_progress_callback", lambda name: StopAtTheEndOfTheBalancedPhase())
        with pytest.raises(KeyboardInterrupt):
            warmstart(WarmstartConfig(**common, output_dir=str(tmp_path / "plain")))
    resumed = WarmstartConfig(**common, rehearsal_share=0.5, output_dir=str(tmp_path / "resumed"))
    partial = tmp_path / "resumed.partial"
    partial.mkdir()
    shutil.copytree(tmp_path / "plain.partial" / "checkpoint-10", partial / "checkpoint-10")
    (partial / "config.json").write_text(checkpoint_signature(resumed))
    a = AutoModelForCausalLM.from_pretrained(warmstart(resumed))
    b = AutoModelForCausalLM.from_pretrained(warmstart(WarmstartConfig(**common, rehearsal_share=0.5,
                                                                       output_dir=str(tmp_path / "scratch"))))
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))


def test_competence_curve_checks_do_not_move_a_runners_progress_backwards(tmp_path, monkeypatch):
    """The benchmark runner maps each reported stage onto a share of the warm start (benchmarks.scheduler) and never
    moves its bar back: a curve check reported as the final competence stage froze the bar near 100% from the first
    check on. Every report, mapped as the runner maps it, must be at least the one before."""
    import agents.progress
    from benchmarks.scheduler import WARMSTART_STAGES

    reports: list[tuple[str, int, int]] = []
    monkeypatch.setattr(agents.progress, "report_progress", lambda stage, done, total: reports.append(
        (stage, done, total)))
    warmstart(WarmstartConfig(env_id="PolySet-Multiplication-v0", env_kwargs={"p_digits": 2, "q_digits": 1},
                              d_model=32, n_layers=1, n_heads=2, max_positions=256, num_demos=32, max_steps=4,
                              batch_size=16, eval_problems=1, eval_samples=1, competence_problems=1,
                              competence_samples=1, max_new_tokens=8, num_threads=1, curve_steps=1, curve_problems=1,
                              strategy_weights={"p-add": 0.5, "q-sub": 0.5}, output_dir=str(tmp_path / "base")))
    stages = [stage for stage, _, _ in reports]
    assert "warm start" in stages and stages[-1] == "competence"
    shares = [WARMSTART_STAGES[s][0] + (WARMSTART_STAGES[s][1] - WARMSTART_STAGES[s][0]) * done / total
              for s, done, total in reports]
    assert all(b >= a for a, b in zip(shares, shares[1:])), list(zip(stages, shares))


def test_read_curve_keeps_the_last_row_of_a_step(tmp_path):
    """A resumed build may check a step twice (checked, then interrupted before its checkpoint): the last row wins."""
    from agents.warmstart import curve_csv, read_curve

    path = tmp_path / "curve.jsonl"
    rows = [{"step": 2, "phase": "balanced", "accuracy": {"a": 0.1, "b": None}, "samples_per_family": 4},
            {"step": 4, "phase": "balanced", "accuracy": {"a": 0.2, "b": 0.3}, "samples_per_family": 4},
            {"step": 2, "phase": "balanced", "accuracy": {"a": 0.5, "b": None}, "samples_per_family": 4}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    curve = read_curve(path)
    assert [(r["step"], r["accuracy"]["a"]) for r in curve] == [(2, 0.5), (4, 0.2)]
    assert curve_csv(curve).splitlines() == ["step,phase,a,b,samples_per_family", "2,balanced,0.500,,4",
                                             "4,balanced,0.200,0.300,4"]
    assert read_curve(tmp_path / "missing.jsonl") == []


def test_checkpoint_signature_survives_new_options_but_not_changed_knobs():
    """A build's checkpoints resume across an added option (still at its default), not across a changed knob."""
    from dataclasses import asdict

    cfg = WarmstartConfig(env_id=POLY, batch_size=32, balanced_demos=500, max_steps=40)
    full = {k: v for k, v in asdict(cfg).items() if k not in ("num_threads", "output_dir")}
    older = {k: v for k, v in full.items() if k not in ("slip_rates", "balanced_weights")}  # written before they existed
    assert same_checkpoint_config(json.dumps(full, default=str), cfg)
    assert same_checkpoint_config(json.dumps(older, default=str), cfg)
    assert same_checkpoint_config(checkpoint_signature(cfg), cfg)
    # the curve only adds measurements: it may change on a resume
    assert same_checkpoint_config(checkpoint_signature(cfg), WarmstartConfig(env_id=POLY, batch_size=32,
                                                                             balanced_demos=500, max_steps=40,
                                                                             curve_steps=10))
    assert not same_checkpoint_config(json.dumps({**older, "batch_size": 64}, default=str), cfg)
    assert not same_checkpoint_config(json.dumps(older, default=str),
                                      WarmstartConfig(env_id=POLY, batch_size=32, balanced_demos=500, max_steps=40,
                                                      slip_rates={"x=1": 0.1}))
    assert not same_checkpoint_config(checkpoint_signature(cfg), WarmstartConfig(env_id=POLY, batch_size=32,
                                                                                 balanced_demos=500, max_steps=80))
    assert not same_checkpoint_config("not json", cfg) and not same_checkpoint_config("[]", cfg)


def test_a_new_demonstration_version_invalidates_cached_bases_and_checkpoints(monkeypatch):
    """A domain that changes how it writes demonstrations bumps ``demonstration_version``: the benchmark layout's base
    folder and the checkpoints' signature change with it, so no base or half-built one from older demonstrations is
    reused; domains still at version 1 keep their signatures (and their cached bases)."""
    from benchmarks.layout import config_hash
    from polyenv.domains.multiplication import MultiplicationEnv
    from polyenv.domains.polynomial import PolynomialEnv
    from polyenv.registration import demonstration_version

    mult = "PolySet-Multiplication-v0"
    assert demonstration_version(mult) == MultiplicationEnv.demonstration_version >= 2
    assert demonstration_version(POLY) == 1 and demonstration_version("PolySet-Nope-v0") == 1
    cfg = WarmstartConfig(env_id=mult, batch_size=32, balanced_demos=500, max_steps=40)
    signature = checkpoint_signature(cfg)
    assert json.loads(signature)["demonstration_version"] == MultiplicationEnv.demonstration_version
    assert same_checkpoint_config(signature, cfg)
    unversioned = {k: v for k, v in json.loads(signature).items() if k != "demonstration_version"}
    assert not same_checkpoint_config(json.dumps(unversioned), cfg)  # written from version-1 demonstrations
    poly_cfg = WarmstartConfig(env_id=POLY, batch_size=32, balanced_demos=500, max_steps=40)
    assert "demonstration_version" not in json.loads(checkpoint_signature(poly_cfg))
    kwargs = {"model": "tiny", "env_id": mult, "balanced_demos": 500}
    poly_kwargs = {**kwargs, "env_id": POLY}
    before, poly_before = config_hash(kwargs), config_hash(poly_kwargs)

    monkeypatch.setattr(MultiplicationEnv, "demonstration_version", MultiplicationEnv.demonstration_version + 1)
    assert not same_checkpoint_config(signature, cfg)
    assert same_checkpoint_config(checkpoint_signature(cfg), cfg)
    assert config_hash(kwargs) != before and config_hash(poly_kwargs) == poly_before
    monkeypatch.setattr(PolynomialEnv, "demonstration_version", 2)
    assert config_hash(poly_kwargs) != poly_before
    poly_unversioned = {k: v for k, v in json.loads(checkpoint_signature(poly_cfg)).items()
                        if k != "demonstration_version"}
    assert not same_checkpoint_config(json.dumps(poly_unversioned), poly_cfg)
