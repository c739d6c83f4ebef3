"""DiffRec under the shared contract, plus the noise schedule, importance sampling and sampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genrec.data.synthetic import planted_clusters
from genrec.models import DiffRec
from genrec.models.interactions.diffrec import (
    Diffusion,
    StepSampler,
    diffusion_loss,
    noise_schedule,
)

from .contract import OPTIONS, ModelContract

TINY = {
    "hidden": (32,),
    "lr": 0.01,
    "batch_size": 32,
    "max_epochs": 40,
    "patience": 5,
    "dropout": 0.2,
}


class TestDiffRec(ModelContract):
    model_cls = DiffRec
    config = TINY
    quality_floor = 0.9
    stochastic = True
    fit_with_valid = True
    bad_configs = [
        {"steps": 0},
        {"noise_scale": 0.0},
        {"noise_scale": 1.5},
        {"noise_min": 0.0},
        {"noise_min": 0.02, "noise_max": 0.01},
        {"sampling_steps": -1},
        {"sampling_steps": 6},
        {"history_per_step": 0},
        {"hidden": ()},
        {"hidden": (0,)},
        {"emb_size": 1},
        {"dropout": 1.0},
        {"lr": 0.0},
        {"weight_decay": -1.0},
        {"batch_size": 0},
        {"max_epochs": 0},
        {"patience": 0},
        {"eval_every": 0},
    ]


@pytest.fixture(scope="module")
def world():
    return planted_clusters(noise=2)


@pytest.fixture(scope="module")
def fitted(world):
    return DiffRec({**TINY, "max_epochs": 15}).fit(world.split.train, options=OPTIONS)


def test_schedule_matches_a_hand_computation():
    abar, beta = noise_schedule(3, 0.5, 0.1, 0.5)
    expected = 1 - 0.5 * np.array([0.1, 0.3, 0.5])  # 1 - s (a_min + (t-1)/(T-1) (a_max - a_min))
    np.testing.assert_allclose(abar, expected, rtol=1e-12)
    np.testing.assert_allclose(beta, [0.05, 1 - 0.85 / 0.95, 1 - 0.75 / 0.85], rtol=1e-12)
    np.testing.assert_allclose(np.cumprod(1 - beta), abar, rtol=1e-12)


@pytest.mark.parametrize(
    "steps, scale, lo, hi",
    [(1, 0.01, 0.1, 0.2), (5, 0.01, 0.001, 0.01), (40, 0.005, 0.005, 0.01), (100, 1.0, 0.01, 0.9)],
)
def test_schedule_is_monotone_inside_the_unit_interval(steps, scale, lo, hi):
    abar, beta = noise_schedule(steps, scale, lo, hi)
    assert ((abar > 0) & (abar < 1)).all() and ((beta > 0) & (beta < 1)).all()
    assert (np.diff(abar) < 0).all()


def test_posterior_mean_recovers_x0_when_the_prediction_is_exact():
    """With x0_hat = x0 and x_t = q_sample(x0), the reverse chain without noise returns x0."""
    diffusion = Diffusion(4, 0.1, 0.1, 0.9)
    x0 = torch.tensor([[1.0, 0.0, 1.0]])
    x_t = diffusion.q_sample(x0, torch.tensor([3]), torch.randn(1, 3))
    out = diffusion.reverse(lambda x, t: x0.expand_as(x), x_t)
    torch.testing.assert_close(out, x0)
    # the posterior mean of a noise-free x_t = sqrt(abar_t) x0 is sqrt(abar_{t-1}) x0
    mean = diffusion.coef_x0 + diffusion.coef_xt * diffusion.sqrt_abar
    torch.testing.assert_close(mean[1:], diffusion.sqrt_abar[:-1])


def test_importance_sampling_is_uniform_until_the_history_is_full_then_favours_high_loss():
    sampler = StepSampler(4, history=3)
    sampler.update(np.array([0, 1, 2, 3, 0, 1, 2]), np.ones(7))
    np.testing.assert_allclose(sampler.probabilities(), 0.25)  # step 3 has only one loss
    sampler.update(np.array([3, 3, 0, 1, 2]), np.array([10.0, 10.0, 1.0, 1.0, 1.0]))
    p = sampler.probabilities()
    # history keeps the last 3: step 3 holds [1, 10, 10]; the others [1, 1, 1]
    rms = np.array([1, 1, 1, np.sqrt(201 / 3)])
    np.testing.assert_allclose(p, 0.999 * rms / rms.sum() + 0.001 / 4)
    assert p[3] > 0.5 and p.sum() == pytest.approx(1.0)
    torch.manual_seed(0)
    t, p_t = sampler.sample(2000)
    assert (t == 3).float().mean() > 0.5
    torch.testing.assert_close(p_t, torch.tensor(p, dtype=torch.float32)[t])


def test_weighted_loss_is_unbiased_by_the_step_probabilities():
    """Dividing by T p_t makes the expected loss the plain mean over steps of w_t L_t."""
    diffusion = Diffusion(3, 0.1, 0.1, 0.9)
    sampler = StepSampler(3, history=1)
    sampler.update(np.array([0, 1, 2]), np.array([1.0, 2.0, 3.0]))
    x0 = torch.zeros(4000, 2)
    torch.manual_seed(0)
    loss, _ = diffusion_loss(
        diffusion, sampler, lambda x, t: (t[:, None] + 1.0).expand_as(x), x0, reweight=False
    )
    # the constant prediction t + 1 has squared error (t + 1)^2: mean over steps 14 / 3
    assert float(loss) == pytest.approx(14 / 3, rel=0.05)


def test_step_weights_are_snr_differences():
    diffusion = Diffusion(3, 0.5, 0.1, 0.5)
    abar = 1 - 0.5 * np.array([0.1, 0.3, 0.5])
    snr = abar / (1 - abar)
    np.testing.assert_allclose(
        diffusion.weight.numpy(), [1.0, snr[0] - snr[1], snr[1] - snr[2]], rtol=1e-6
    )


def test_sample_profiles(world, fitted):
    profiles = fitted.sample_profiles(50, seed=3)
    assert profiles.shape == (50, world.data.n_items)
    lengths = np.asarray(profiles.sum(axis=1)).ravel()
    assert set(lengths) <= set(fitted.train_lengths_)
    assert set(np.unique(profiles.data)) == {1.0}
    again = fitted.sample_profiles(50, seed=3)
    assert (profiles != again).nnz == 0
    assert (profiles != fitted.sample_profiles(50, seed=4)).nnz > 0
    fixed = fitted.sample_profiles(4, lengths=np.array([0, 1, 5, 60]))
    assert np.asarray(fixed.sum(axis=1)).ravel().tolist() == [0, 1, 5, 60]


def test_sample_profiles_bad_lengths_raise(fitted):
    from genrec.errors import ConfigError

    with pytest.raises(ConfigError, match="lengths"):
        fitted.sample_profiles(2, lengths=np.array([1, 100]))


def test_sample_profiles_survive_save_load(fitted, tmp_path):
    fitted.save(tmp_path / "m")
    loaded = DiffRec.load(tmp_path / "m")
    assert (loaded.sample_profiles(10, seed=1) != fitted.sample_profiles(10, seed=1)).nnz == 0


def test_noisy_inference_is_deterministic_and_batch_equals_single(world):
    model = DiffRec({**TINY, "max_epochs": 3, "sampling_steps": 2, "sampling_noise": True})
    model.fit(world.split.train, options=OPTIONS)
    x = world.split.train.user_items[:5]
    together = model.score(x)
    np.testing.assert_array_equal(together, model.score(x))
    np.testing.assert_allclose(model.score(x[3]), together[3:4], rtol=1e-5, atol=1e-5)


def test_loss_decreases_and_importance_weights_are_learned(world):
    model = DiffRec({**TINY, "max_epochs": 20}).fit(world.split.train, options=OPTIONS)
    assert model.loss_history_[-1] < model.loss_history_[0]
    p = model.step_probabilities_
    assert p.shape == (5,) and p.sum() == pytest.approx(1.0) and not np.allclose(p, 0.2)


def test_paper_preset_builds():
    cfg = DiffRec.Config.from_preset("paper")
    assert cfg.steps == 40 and cfg.hidden == (600, 200)
