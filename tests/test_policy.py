"""Policy: sampling (seeded, plain tempered distribution, shared prompt prefix) and per-token log-probs with the
right mask (prompt and padding out, EOS in), checked against a hand computation on unpadded sequences."""

from __future__ import annotations

import math

import pytest
import torch
from rl_helpers import build_tiny_model_dir

from agents.policy import Policy, Rollouts, TemperedSampler, completion_mask_from_eos
from polyenv.models import format_prompt

PROMPTS = ["Find integers x and y such that y = 2x^2 - 3x + 5.", "Say hi."]


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    torch.set_num_threads(1)
    path = build_tiny_model_dir(tmp_path_factory.mktemp("tiny"))
    return Policy.from_pretrained(str(path), device="cpu")


def test_completion_mask_keeps_first_eos_when_pad_is_eos():
    eos = 2  # SmolLM2: pad == eos, so comparing with pad_token_id would mask the EOS itself
    ids = torch.tensor([[5, 6, eos, eos, eos], [5, eos, 7, eos, 9], [5, 6, 7, 8, 9], [eos, eos, eos, eos, eos]])
    expected = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])
    assert torch.equal(completion_mask_from_eos(ids, [eos]), expected)
    # several EOS ids (e.g. <|im_end|> and <|endoftext|>): the first of any ends the completion
    assert completion_mask_from_eos(torch.tensor([[4, 9, 2, 1]]), [2, 9]).tolist() == [[1, 1, 0, 0]]


def test_generate_shapes_masks_texts_and_chat_template(policy):
    r = policy.generate(PROMPTS, num_generations=3, max_new_tokens=8, seed=0)
    assert isinstance(r, Rollouts) and len(r) == 6 and r.num_generations == 3
    assert r.completion_ids.shape == r.completion_mask.shape and r.completion_ids.size(1) <= 8
    assert len(r.texts) == 6 and [len(g) for g in r.groups()] == [3, 3]
    for row in range(6):
        prompt = PROMPTS[row // 3]
        real = r.prompt_ids[row][r.prompt_mask[row].bool()].tolist()
        # the policy is conditioned on the chat-templated prompt, left-padded
        assert policy.tokenizer.decode(real) == format_prompt(policy.tokenizer, prompt)
        assert r.prompt_mask[row, -1] == 1
        k = int(r.completion_mask[row].sum())
        assert r.completion_mask[row, :k].all() and not r.completion_mask[row, k:].any()
        body = r.completion_ids[row, :k].tolist()
        if not r.truncated[row]:
            assert body[-1] in policy.eos_token_ids
            body = body[:-1]
        assert r.texts[row] == policy.tokenizer.decode(body, skip_special_tokens=True)


def test_generate_is_seeded_without_touching_global_rng(policy):
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    a = policy.generate(PROMPTS, num_generations=2, max_new_tokens=6, seed=7)
    assert torch.equal(torch.rand(3), expected_next)
    b = policy.generate(PROMPTS, num_generations=2, max_new_tokens=6, seed=7)
    c = policy.generate(PROMPTS, num_generations=2, max_new_tokens=6, seed=8)
    assert torch.equal(a.completion_ids, b.completion_ids)
    assert not torch.equal(a.completion_ids, c.completion_ids)


def test_shared_prompt_prefix_samples_the_same_tokens(policy):
    shared = policy.generate(PROMPTS, num_generations=4, max_new_tokens=10, seed=3)
    policy.share_prompt_prefix = False
    try:
        plain = policy.generate(PROMPTS, num_generations=4, max_new_tokens=10, seed=3)
    finally:
        policy.share_prompt_prefix = True
    assert torch.equal(shared.completion_ids, plain.completion_ids)
    assert torch.allclose(policy.log_probs(shared), policy.log_probs(plain), atol=1e-5)


def test_sampling_ignores_the_models_generation_config_top_k(policy):
    # The saved model's generation_config says top_k=5, temperature=0.3; the policy must sample the plain distribution
    # at temperature 1, so a near-uniform random model picks tokens far outside the top 5.
    r = policy.generate(PROMPTS, num_generations=4, max_new_tokens=6, seed=1)
    ranks = []
    for row in range(len(r)):
        ids = torch.cat([r.prompt_ids[row][r.prompt_mask[row].bool()], r.completion_ids[row]])
        with torch.no_grad():
            logits = policy.model(ids[None]).logits[0]
        p = int(r.prompt_mask[row].sum())
        for t in range(int(r.completion_mask[row].sum())):
            scores = logits[p + t - 1]
            ranks.append(int((scores > scores[ids[p + t]]).sum()))
    assert sum(rank >= 5 for rank in ranks) > len(ranks) // 2


def test_sampler_matches_the_tempered_distribution():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0, -30.0]])
    temperature, draws = 0.7, 20000
    gen = torch.Generator().manual_seed(0)
    sampler = TemperedSampler(temperature, 1.0, gen)
    counts = torch.bincount(torch.cat([sampler.sample(logits.expand(1000, -1)) for _ in range(draws // 1000)]),
                            minlength=5).double()
    probs = torch.softmax(logits[0] / temperature, -1).double()
    sigma = torch.sqrt(draws * probs * (1 - probs))
    assert torch.all((counts - draws * probs).abs() <= 5 * sigma + 1)
    # one-hot scores: greedy decoding emits exactly the sample
    out = TemperedSampler(1.0, 1.0, torch.Generator().manual_seed(1))(None, logits.repeat(3, 1))
    assert torch.all((out == 0).sum(-1) == 1) and torch.all(torch.isinf(out).sum(-1) == 4)


def test_sampler_top_p_keeps_only_the_nucleus():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    sampler = TemperedSampler(1.0, 0.7, torch.Generator().manual_seed(0))
    tokens = sampler.sample(logits.expand(4000, -1))
    assert set(tokens.tolist()) == {0, 1}  # 0.5 < 0.7 so the second token is needed; then 0.8 >= 0.7
    share = (tokens == 0).double().mean().item()
    assert abs(share - 0.5 / 0.8) < 0.03


def test_log_probs_match_a_hand_computation(policy):
    r = policy.generate(PROMPTS, num_generations=2, max_new_tokens=7, seed=4)
    eos = policy.eos_token_ids[0]
    # Force an EOS early in rows 0 and 3 (the rest becomes pad, which equals EOS for SmolLM2's tokenizer).
    ids = r.completion_ids.clone()
    ids[0, 2] = eos
    ids[0, 3:] = policy.tokenizer.pad_token_id
    ids[3, 0] = eos
    ids[3, 1:] = policy.tokenizer.pad_token_id
    mask = completion_mask_from_eos(ids, policy.eos_token_ids)
    assert mask[0].tolist()[:4] == [1, 1, 1, 0] and mask[3].tolist()[:2] == [1, 0]
    batch = {"prompt_ids": r.prompt_ids, "prompt_mask": r.prompt_mask, "completion_ids": ids, "completion_mask": mask}
    temperature = 0.8
    got, entropy = policy.log_probs(batch, temperature, return_entropy=True)
    assert got.shape == ids.shape
    for row in range(ids.size(0)):
        prompt = r.prompt_ids[row][r.prompt_mask[row].bool()]
        k = int(mask[row].sum())
        seq = torch.cat([prompt, ids[row, :k]])[None]  # unpadded: no masks involved at all
        with torch.no_grad():
            logits = policy.model(seq).logits[0] / temperature
        for t in range(ids.size(1)):
            if t < k:
                logp = torch.log_softmax(logits[len(prompt) + t - 1], -1)
                assert math.isclose(got[row, t].item(), logp[ids[row, t]].item(), rel_tol=1e-4, abs_tol=1e-4)
                h = -(logp.exp() * logp).sum()
                assert math.isclose(entropy[row, t].item(), h.item(), rel_tol=1e-4, abs_tol=1e-4)
            else:
                assert got[row, t] == 0 and entropy[row, t] == 0
    # the EOS token itself is scored (the model must learn to stop)
    assert got[0, 2] != 0 and got[3, 0] != 0
    # chunking rows gives the same values
    assert torch.allclose(policy.log_probs(batch, temperature, batch_size=1), got, atol=1e-5)


def test_log_probs_are_differentiable(policy):
    r = policy.generate(PROMPTS[:1], num_generations=2, max_new_tokens=4, seed=0)
    logp = policy.log_probs(r)
    logp.sum().backward()
    grads = [p.grad for p in policy.model.parameters()]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)
    policy.model.zero_grad(set_to_none=True)


def test_bad_prompts_raise_before_sampling(policy):
    with pytest.raises(ValueError, match="max_prompt_length=5"):
        policy.generate(PROMPTS, max_new_tokens=4, max_prompt_length=5)
    with pytest.raises(ValueError, match="context of 512 tokens"):
        policy.generate(["x " * 300], max_new_tokens=400)
    with pytest.raises(TypeError, match="single str"):
        policy.generate("one prompt", max_new_tokens=4)
    with pytest.raises(TypeError, match="log_probs takes"):
        policy.log_probs(torch.zeros(2, 2))
