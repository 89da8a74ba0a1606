"""Memory: the estimator against hand-computed values and against what autograd really keeps, and the chunked
log-prob scorer against the plain full-vocabulary computation on the real SmolLM2-135M (values and gradients)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

from agents.memory import (
    GiB,
    MemoryBudgetError,
    MemoryEstimate,
    ModelDims,
    activation_bytes,
    check_fits,
    estimate_memory,
    kv_cache_bytes,
    logits_bytes,
    memory_budget,
)
from agents.policy import output_head, sequence_log_probs, token_log_probs

SMOLLM2 = {"hidden_size": 576, "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3,
           "head_dim": 64, "intermediate_size": 1536, "vocab_size": 49152, "tie_word_embeddings": True,
           "model_type": "llama"}
QWEN3_4B = {"hidden_size": 2560, "num_hidden_layers": 36, "num_attention_heads": 32, "num_key_value_heads": 8,
            "head_dim": 128, "intermediate_size": 9728, "vocab_size": 151936, "tie_word_embeddings": True,
            "model_type": "qwen3"}


# ---- parameter counts -------------------------------------------------------------------------------------------
def test_parameter_count_of_smollm2_by_hand_and_from_its_real_config():
    # embeddings 49152 * 576 (tied) + 30 layers * (attention 576*576*2 + 576*192*2, MLP 3*576*1536, norms 2*576)
    # + final norm 576
    by_hand = 49152 * 576 + 30 * (2 * 576 * 576 + 2 * 576 * 192 + 3 * 576 * 1536 + 2 * 576) + 576
    assert by_hand == 134_515_008  # what SmolLM2-135M-Instruct loads as (model.num_parameters())
    assert ModelDims.from_config(SMOLLM2).parameters == by_hand
    assert ModelDims.from_config("smollm2-135m").parameters == by_hand  # the packaged model's config.json


def test_parameter_count_of_qwen3_4b_with_qk_norm():
    layer = 2560 * 4096 + 2 * 2560 * 1024 + 4096 * 2560 + 2 * 128 + 3 * 2560 * 9728 + 2 * 2560
    dims = ModelDims.from_config(QWEN3_4B)
    assert dims.qk_norm and not dims.attention_bias
    assert dims.parameters == 151936 * 2560 + 36 * layer + 2560 == 4_022_468_096
    untied = ModelDims.from_config({**QWEN3_4B, "tie_word_embeddings": False})
    assert untied.parameters - dims.parameters == 151936 * 2560
    assert ModelDims.from_config(QWEN3_4B, num_parameters=123).parameters == 123  # an exact count wins


# ---- terms by hand ----------------------------------------------------------------------------------------------
def test_activation_bytes_by_hand():
    dims = ModelDims.from_config(SMOLLM2)
    # per layer and query token: 4D + 2 + 2 H dh + H + 4I = 2304 + 2 + 1152 + 9 + 6144 = 9611 elements;
    # per key token: 2 H dh + 2 K dh = 1152 + 384 = 1536; outside the layers: 3D + 2 dh = 1856 per token.
    tokens = 2 * (10 + 20)
    expected = (30 * tokens * (9611 + 1536) + tokens * 1856) * 4
    assert activation_bytes(dims, micro_batch_size=2, prompt_length=10, completion_length=20) == expected
    # bf16 halves it; checkpointing keeps D per layer and token plus one layer
    assert activation_bytes(dims, micro_batch_size=2, prompt_length=10, completion_length=20,
                            dtype="bfloat16") == expected // 2
    ckpt = (30 * tokens * 576 + tokens * (9611 + 1536) + tokens * 1856) * 4
    assert activation_bytes(dims, micro_batch_size=2, prompt_length=10, completion_length=20,
                            gradient_checkpointing=True) == ckpt
    # a shared prompt (group of 2): the prompt's 10 tokens run once; the 2 completions attend to 10 + 20 keys each
    query, keys = 10 + 2 * 20, 10 + 2 * 30
    shared = (30 * (query * 9611 + keys * 1536) + query * 1856) * 4
    assert activation_bytes(dims, micro_batch_size=2, prompt_length=10, completion_length=20,
                            shared_prefix_group=2) == shared
    # eager attention adds H * T * T probabilities per row and layer
    eager = expected + 30 * 2 * 9 * 30 * 30 * 4
    assert activation_bytes(dims, micro_batch_size=2, prompt_length=10, completion_length=20,
                            attn_implementation="eager") == eager


def test_logits_and_kv_cache_by_hand():
    dims = ModelDims.from_config(QWEN3_4B)
    # 8 x 4097 x 151,936 fp32 logits are ~20 GB a copy: the plain scorer keeps logits, a fp32 copy and the gradient
    full = logits_bytes(dims, scored_tokens=8 * 4097, model_dtype="bfloat16")
    assert full == 8 * 4097 * 151936 * (2 + 4 + 4)
    assert logits_bytes(dims, scored_tokens=8 * 4097, logits_chunk_tokens=441, model_dtype="bfloat16") == \
        441 * 151936 * 10
    # KV cache: 2 (k, v) x layers x kv heads x head dim per token
    assert kv_cache_bytes(dims, batch_size=16, sequence_length=5120, dtype="bfloat16") == \
        16 * 5120 * 36 * 2 * 8 * 128 * 2


def test_estimate_of_the_default_cpu_config_by_hand():
    dims = ModelDims.from_config(SMOLLM2)
    n = 134_515_008
    est = estimate_memory(dims, micro_batch_size=8, prompt_length=100, completion_length=256,
                          generation_batch_size=64, shared_prefix_group=8, logits_chunk_tokens=1365)
    assert est.weights == 4 * n and est.gradients == 4 * n and est.optimizer == 8 * n
    assert est.overhead == int(0.3 * GiB)
    assert est.update_slack == int(0.3 * (est.activations + est.logits))
    assert est.activations == activation_bytes(dims, micro_batch_size=8, prompt_length=100, completion_length=256,
                                               shared_prefix_group=8)
    assert est.logits == 1365 * 49152 * 12
    assert est.kv_cache == 64 * 356 * 30 * 2 * 3 * 64 * 4
    assert est.sampling == 64 * 49152 * 20
    assert est.peak == est.weights + est.optimizer + est.overhead + max(
        est.kv_cache + est.sampling, est.gradients + est.activations + est.logits + est.update_slack)
    assert 3 * GiB < est.peak < 8 * GiB  # the target of the default config
    # the micro-batch is the knob: 64 rows at once do not fit in 8 GiB, with or without chunked logits
    big = estimate_memory(dims, micro_batch_size=64, prompt_length=100, completion_length=256,
                          generation_batch_size=64, shared_prefix_group=8)
    assert big.peak > 8 * GiB and big.logits == 64 * 256 * 49152 * 12


# Peak RSS of `python -m benchmarks.bench_memory_update --completion-length T --num-threads 1` (SmolLM2-135M, fp32,
# one prompt of 61 tokens, 8 completions of T tokens, two AdamW steps, the trainer's allocator setting), measured on
# this project's 2-core CPU machine.
MEASURED_UPDATE_PEAK_GIB = {32: 2.75, 128: 4.39, 256: 6.24}


@pytest.mark.parametrize("completion_length", sorted(MEASURED_UPDATE_PEAK_GIB))
def test_estimate_against_measured_peak_rss(completion_length):
    """The CPU estimate of the update phase is never below its measured peak RSS (and at most 0.6 GiB above it: the
    slack also covers what a whole run adds, see the next test)."""
    dims = ModelDims.from_config(SMOLLM2)
    est = estimate_memory(dims, micro_batch_size=8, prompt_length=61, completion_length=completion_length,
                          generation_batch_size=8, shared_prefix_group=8, logits_chunk_tokens=1365)
    estimated = (est.static + est.update) / GiB
    measured = MEASURED_UPDATE_PEAK_GIB[completion_length]
    assert measured <= estimated <= measured + 0.6, (estimated, measured)


WHOLE_RUN_PEAK_GIB = 6.77
"""`python -m benchmarks.bench_memory --max-steps 2 --num-threads 1`: the default training command (SmolLM2-135M,
8 prompts x 8 samples, 256-token completions, micro-batches of 8; 61-token prompts), peak RSS over two steps."""


def test_estimate_covers_the_measured_whole_run_of_the_default_command():
    from agents.memory import preflight_check

    est = preflight_check(_train_config(), ModelDims.from_config(SMOLLM2), prompt_length=61, rows_per_mini_batch=64,
                          group_size=8, budget=8 * GiB, logits_chunk_bytes=256 * 2**20)
    assert WHOLE_RUN_PEAK_GIB <= est.peak / GiB <= WHOLE_RUN_PEAK_GIB + 0.35


def test_update_phase_of_the_default_config_by_hand():
    """T = 256: weights 4n, gradients 4n, AdamW 8n bytes, overhead 0.3 GiB, activations and logits from their
    formulas (tested above), slack 0.3 of (activations + logits)."""
    dims = ModelDims.from_config(SMOLLM2)
    n = 134_515_008
    est = estimate_memory(dims, micro_batch_size=8, prompt_length=61, completion_length=256,
                          generation_batch_size=64, shared_prefix_group=8, logits_chunk_tokens=1365)
    assert est.logits == 1365 * 49152 * 12 == 805_109_760
    assert est.activations == 2_926_688_136
    assert est.update_slack == int(0.3 * (2_926_688_136 + 805_109_760)) == 1_119_539_368
    assert est.peak == 16 * n + int(0.3 * GiB) + 2_926_688_136 + 805_109_760 + 1_119_539_368 == 7_325_699_939
    assert round(est.peak / GiB, 2) == 6.82
    cuda = estimate_memory(dims, micro_batch_size=8, prompt_length=61, completion_length=256, shared_prefix_group=8,
                           logits_chunk_tokens=1365, device="cuda")
    assert cuda.update_slack == 0 and cuda.overhead == GiB
    with pytest.raises(ValueError, match="update_slack must be a finite number >= 0"):
        estimate_memory(dims, micro_batch_size=1, prompt_length=1, completion_length=1, update_slack=-0.1)


def test_autocast_sharding_and_reference_model_terms():
    dims = ModelDims.from_config(QWEN3_4B)
    n = dims.parameters
    est = estimate_memory(dims, micro_batch_size=1, prompt_length=1024, completion_length=4096, param_dtype="float32",
                          compute_dtype="bfloat16", num_shards=8, device="cuda", reference_model=True)
    assert est.weights == 2 * (4 * n // 8) + 2 * n // 36  # fp32 shard + reference shard + one bf16 layer copy
    assert est.gradients == 4 * n // 8 and est.optimizer == 8 * n // 8
    assert est.overhead == GiB and est.kv_cache == 0 and est.sampling == 0


def test_plus_adds_an_engine_term_to_the_static_part():
    est = MemoryEstimate(weights=10, gradients=1, optimizer=20, activations=5, logits=2, kv_cache=4, sampling=1,
                         overhead=3)
    assert est.peak == 10 + 20 + 3 + max(4 + 1, 1 + 5 + 2)
    more = est.plus("vllm_reservation", 100, note="vLLM gpu_memory_utilization 0.3")
    assert more.peak == est.peak + 100 and more.terms()["vllm_reservation"] == 100
    assert "vllm_reservation" in more.format() and "gpu_memory_utilization" in more.format()
    with pytest.raises(ValueError, match="already exists"):
        more.plus("weights", 1)


def test_check_fits_names_the_knob_and_the_fitting_value():
    est = MemoryEstimate(weights=6 * GiB, gradients=GiB, optimizer=GiB, activations=5 * GiB, logits=0, kv_cache=0,
                         sampling=0, overhead=0)
    check_fits(est, 20 * GiB)  # fits: nothing raised
    with pytest.raises(MemoryBudgetError, match=r"needs about 13\.0 GiB but only 10\.0 GiB.*"
                                                r"per_device_train_batch_size=2 \(now 8\)"):
        check_fits(est, 10 * GiB, current=8, suggestion=2)
    with pytest.raises(MemoryBudgetError, match="lower per_device_train_batch_size"):
        check_fits(est, 10 * GiB)


def test_bad_inputs_are_value_errors():
    dims = ModelDims.from_config(SMOLLM2)
    with pytest.raises(ValueError, match="micro_batch_size"):
        estimate_memory(dims, micro_batch_size=0, prompt_length=1, completion_length=1)
    with pytest.raises(ValueError, match="unknown dtype"):
        estimate_memory(dims, micro_batch_size=1, prompt_length=1, completion_length=1, param_dtype="float8")
    with pytest.raises(ValueError, match="hidden_size"):
        ModelDims.from_config({"num_hidden_layers": 2})
    assert memory_budget("cpu") > 0


# ---- the estimate against what autograd really keeps ------------------------------------------------------------
def _saved_bytes(model: torch.nn.Module, fn) -> int:
    """Bytes of the distinct non-parameter tensors autograd saves while ``fn`` runs."""
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = max(seen.get(storage.data_ptr(), 0), storage.nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    return sum(v for k, v in seen.items() if k not in params)


@pytest.fixture(scope="module")
def small_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=1000, hidden_size=96, intermediate_size=256, num_hidden_layers=3,
                         num_attention_heads=6, num_key_value_heads=2, head_dim=16, tie_word_embeddings=True)
    return LlamaForCausalLM(config).train()


def test_activation_formula_matches_saved_tensors_of_a_real_llama(small_llama):
    dims = ModelDims.from_model(small_llama)
    ids = torch.randint(0, 1000, (4, 22))
    got = _saved_bytes(small_llama, lambda: small_llama(input_ids=ids, use_cache=False, logits_to_keep=1))
    est = activation_bytes(dims, micro_batch_size=4, prompt_length=10, completion_length=12)
    assert abs(got - est) / est < 0.01


def test_chunked_scoring_keeps_no_full_vocabulary_logits(small_llama):
    b, p, t, v = 4, 10, 12, 1000
    torch.manual_seed(1)
    p_ids, c_ids = torch.randint(0, v, (b, p)), torch.randint(0, v, (b, t))
    ones_p, ones_c = torch.ones(b, p, dtype=torch.long), torch.ones(b, t, dtype=torch.long)
    dims = ModelDims.from_model(small_llama)
    est = activation_bytes(dims, micro_batch_size=b, prompt_length=p, completion_length=t)
    full = _saved_bytes(small_llama, lambda: sequence_log_probs(small_llama, p_ids, ones_p, c_ids, ones_c,
                                                                logits_chunk_bytes=None))
    chunked = _saved_bytes(small_llama, lambda: sequence_log_probs(small_llama, p_ids, ones_p, c_ids, ones_c,
                                                                   logits_chunk_bytes=8 * v * 4))
    assert full - est >= b * t * v * 4  # the plain path keeps the (B, T, V) logits for the backward pass
    assert abs(chunked - est) / est < 0.02  # the chunked path keeps only hidden states (recomputes each chunk)


# ---- chunked log-probs == full log-probs on the real SmolLM2-135M --------------------------------------------------
@pytest.fixture(scope="module")
def smollm2():
    from polyenv.models import load_causal_lm

    torch.set_num_threads(1)
    model, _ = load_causal_lm("smollm2-135m", device="cpu", dtype=torch.float32)
    return model.train()


def _batch(vocab: int, eos: int = 2):
    torch.manual_seed(0)
    b, p, t = 4, 7, 9
    p_ids = torch.randint(3, vocab, (b, p))
    p_ids[1::2] = p_ids[::2]  # groups of 2 rows share a prompt
    p_mask = torch.ones(b, p, dtype=torch.long)
    p_mask[2:, :2] = 0  # left padding of the second prompt
    c_ids = torch.randint(3, vocab, (b, t))
    c_mask = torch.ones(b, t, dtype=torch.long)
    c_ids[0, 4], c_mask[0, 5:] = eos, 0  # EOS at 4 is scored, padding after it is not
    c_ids[3, 1], c_mask[3, 2:] = eos, 0
    return p_ids, p_mask, c_ids, c_mask


@pytest.mark.parametrize("group_size", [1, 2])
def test_chunked_log_probs_equal_full_log_probs_and_gradients_on_smollm2(smollm2, group_size):
    model = smollm2
    assert output_head(model) is model.lm_head
    vocab = model.config.vocab_size
    p_ids, p_mask, c_ids, c_mask = _batch(vocab)
    watched = [model.model.embed_tokens.weight, model.model.layers[-1].mlp.down_proj.weight,
               model.model.layers[0].self_attn.q_proj.weight]
    results = []
    for chunk in (None, 5 * vocab * 4):  # full logits vs 5 tokens per chunk (6 chunks for 28 scored tokens)
        model.zero_grad(set_to_none=True)
        logp, ent = sequence_log_probs(model, p_ids, p_mask, c_ids, c_mask, temperature=0.7, return_entropy=True,
                                       group_size=group_size, logits_chunk_bytes=chunk)
        adv = torch.linspace(-1, 1, logp.numel()).view_as(logp)
        (logp * adv).sum().backward()
        results.append((logp.detach(), ent, [w.grad.clone() for w in watched]))
    (full, full_ent, full_grads), (chunked, chunked_ent, chunked_grads) = results
    assert full.shape == chunked.shape == c_ids.shape
    assert (chunked[c_mask == 0] == 0).all() and (chunked[c_mask == 1] < 0).all()
    torch.testing.assert_close(chunked, full, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(chunked_ent, full_ent, rtol=1e-4, atol=1e-4)  # lse - sum p*logit cancels
    for g_full, g_chunk in zip(full_grads, chunked_grads):
        assert g_full.abs().max() > 0
        # float32 sums in a different order: equal to ~1e-6 of the gradient's norm
        assert float((g_chunk - g_full).norm() / g_full.norm()) < 1e-5
    model.zero_grad(set_to_none=True)


def test_token_log_probs_by_hand():
    torch.manual_seed(0)
    hidden, weight, bias = torch.randn(7, 5), torch.randn(11, 5), torch.randn(11)
    ids = torch.randint(0, 11, (7,))
    logits = (hidden @ weight.T + bias) / 2.0
    expected = logits.log_softmax(-1).gather(-1, ids[:, None]).squeeze(-1)
    probs = logits.softmax(-1)
    expected_entropy = -(probs * probs.log()).sum(-1)
    for chunk in (1, 3, 7, 100):
        logp, ent = token_log_probs(hidden, weight, bias, ids, 2.0, return_entropy=True, chunk_tokens=chunk)
        torch.testing.assert_close(logp, expected)
        torch.testing.assert_close(ent, expected_entropy)
    with pytest.raises(ValueError, match="chunk_tokens"):
        token_log_probs(hidden, weight, bias, ids, chunk_tokens=0)


# ---- micro-batches: the knob, its plan, and the pre-flight refusal -----------------------------------------------
def _train_config(**overrides):
    from agents.config import TrainConfig

    return TrainConfig(**{"env_id": "PolySet-Polynomial-v0", "model": "smollm2-135m", **overrides})


@pytest.mark.parametrize("overrides, plan", [
    ({}, (8, 8)),  # default: 8 completions per micro-batch, one prompt group each (its prompt runs once)
    ({"per_device_train_batch_size": 16}, (8, 4)),
    ({"per_device_train_batch_size": 64}, (8, 1)),
    ({"per_device_train_batch_size": 4}, (1, 16)),  # smaller than a group: rows, no shared prompt
    ({"per_device_train_batch_size": 6}, (1, 11)),  # 10 x 6 + 1 x 4
    ({"gradient_accumulation_steps": 2}, (8, 2)),
    ({"gradient_accumulation_steps": 16}, (1, 16)),
    ({"gradient_checkpointing": True}, (1, 8)),
])
def test_micro_batch_plan(overrides, plan):
    from agents.update import micro_batch_plan

    assert micro_batch_plan(64, 8, _train_config(**overrides)) == plan
    assert micro_batch_plan(64, 8, _train_config(**overrides), share_prompt_prefix=False)[0] == 1


def test_micro_batch_knob_validation():
    from agents.update import micro_batch_plan

    with pytest.raises(ValueError, match="not both"):
        _train_config(per_device_train_batch_size=4, gradient_accumulation_steps=2)
    with pytest.raises(ValueError, match="per_device_train_batch_size must be an integer >= 1"):
        _train_config(per_device_train_batch_size=0)
    with pytest.raises(ValueError, match="gradient_accumulation_steps=3 equal micro-batches; set "
                                         "per_device_train_batch_size"):
        micro_batch_plan(64, 8, _train_config(gradient_accumulation_steps=3))


def test_uneven_micro_batches_give_the_same_update(small_llama_dir):
    """The gradient does not depend on the micro-batch size (dr_grpo normalises per mini-batch)."""
    from agents.policy import Policy
    from agents.update import UpdateBatch, update_policy

    results = []
    for per_device in (8, 3, 1):
        policy = Policy.from_pretrained(str(small_llama_dir), device="cpu")
        rollouts = policy.generate(["Say a word.", "Count to three."], num_generations=4, max_new_tokens=6, seed=0)
        adv = torch.tensor([[1.0, -1.0, 0.5, -0.5], [0.25, 0.0, -0.25, 0.0]])
        opt = torch.optim.SGD(policy.model.parameters(), lr=1e-2)
        cfg = _train_config(model=str(small_llama_dir), prompts_per_step=2, num_generations=4, set_size=2,
                            max_completion_length=6, per_device_train_batch_size=per_device)
        stats = update_policy(policy.model, opt, UpdateBatch.from_rollouts(rollouts, adv), cfg, step=1)
        results.append(({k: v.detach().clone() for k, v in policy.model.state_dict().items()}, stats))
    (ref, ref_stats), *others = results
    for weights, stats in others:
        assert stats.grad_norms == pytest.approx(ref_stats.grad_norms, rel=1e-5)
        assert all(torch.allclose(weights[k], ref[k], atol=1e-6) for k in ref)


@pytest.fixture(scope="module")
def small_llama_dir(tmp_path_factory):
    from rl_helpers import build_tiny_model_dir

    return build_tiny_model_dir(tmp_path_factory.mktemp("tiny"))


def test_preflight_refuses_the_old_default_and_names_the_knob():
    from agents.memory import preflight_check

    dims = ModelDims.from_config(SMOLLM2)
    kwargs = {"prompt_length": 100, "rows_per_mini_batch": 64, "group_size": 8, "logits_chunk_bytes": 256 * 2**20}
    # the default (8 completions per micro-batch) fits in 8 GiB
    est = preflight_check(_train_config(), dims, budget=8 * GiB, **kwargs)
    assert est.peak < 8 * GiB
    # the old default, one micro-batch of all 64 completions, does not: the error names the knob and a value
    with pytest.raises(MemoryBudgetError, match=r"per_device_train_batch_size=\d+ \(now 64\)") as err:
        preflight_check(_train_config(gradient_accumulation_steps=1), dims, budget=8 * GiB, **kwargs)
    assert "activations" in str(err.value)
    suggested = int(str(err.value).split("per_device_train_batch_size=")[1].split(" ")[0])
    assert preflight_check(_train_config(per_device_train_batch_size=suggested), dims, budget=8 * GiB, **kwargs)
    with pytest.raises(MemoryBudgetError, match="even per_device_train_batch_size=1 needs"):
        preflight_check(_train_config(), dims, budget=2 * GiB, **kwargs)


def test_trainer_refuses_before_the_first_step(small_llama_dir, tmp_path, monkeypatch):
    """End to end on the command line: a budget too small for the plan stops the run with the knob's name, before
    any sampling and before anything is written (no run directory, no config.json)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1",
           "POLYENV_MEMORY_BUDGET_GB": "0.3"}
    cmd = [sys.executable, "-m", "agents.train", "--env", "PolySet-Polynomial-v0", "--model", str(small_llama_dir),
           "--max-steps", "1", "--prompts-per-step", "2", "--num-generations", "4", "--set-size", "2",
           "--max-completion-length", "64", "--max-prompt-length", "128", "--output-dir", str(tmp_path), "--run-name",
           "r", "--num-threads", "1",
           "--no-progress"]
    out = subprocess.run(cmd, cwd=Path(__file__).resolve().parents[1], env=env, capture_output=True, text=True,
                         check=False, timeout=300)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "error: " in out.stderr and "per_device_train_batch_size" in out.stderr and "0.3 GiB" in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "r").exists() and list(tmp_path.iterdir()) == []


_RETENTION_PROBE = """
import gc, sys, psutil, torch
from agents.memory import return_freed_memory
print("set", return_freed_memory() if sys.argv[1] == "on" else False)
p = psutil.Process()
rss = lambda: p.memory_info().rss / 2**20
big = torch.empty(16 * 2**20, dtype=torch.uint8); big.fill_(1); del big  # glibc now keeps blocks up to 16 MiB
base = rss()
blocks, keep = [], []
for _ in range(100):  # 400 MiB of 4 MiB blocks, each followed by a 64 KiB tensor that stays alive
    blocks.append(torch.ones(4 * 2**20, dtype=torch.uint8)); keep.append(torch.ones(16 * 2**10))
del blocks; gc.collect()
print("kept", round(rss() - base))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_freed_tensors_go_back_to_the_os(tmp_path):
    """The trainer's allocator setting: 400 MiB of freed activations-sized blocks leave the process's RSS, where
    glibc's default keeps them (what made a whole run's peak RSS exceed its live memory)."""
    import subprocess

    def kept(mode: str) -> tuple[str, int]:
        out = subprocess.run([sys.executable, "-c", _RETENTION_PROBE, mode], capture_output=True, text=True,
                             check=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"},
                             cwd=Path(__file__).resolve().parents[1]).stdout.split()
        return out[1], int(out[3])

    assert kept("on") == ("True", pytest.approx(0, abs=40))
    setting, default_kept = kept("off")
    assert setting == "False" and default_kept > 300
