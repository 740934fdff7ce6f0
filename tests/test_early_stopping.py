"""Early stopping on a smoothed validation score (`--stop-window`): the rule itself, the Trainer with a scripted
validation curve, resuming mid-run, and resuming runs saved before the option existed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from core.data import GraphSet, Group
from core.models import build_model
from core.network import mlp_architecture
from core.runs import RunConfig, _check_same_run
from core.tasks import ClassifyTask, TaskError
from core.training import TrainConfig, Trainer
from core.training.early_stopping import EarlyStopping

# a rising curve with one lucky epoch (index 2): the raw rule stops on it, a 3-epoch mean rides through
NOISY = [0.1, 0.3, 0.6, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7]


def _epochs_until_stop(rule: EarlyStopping, scores: list[float]) -> int:
    for n, s in enumerate(scores, 1):
        if rule.update(s):
            return n
    return len(scores)


def test_window_one_is_the_plain_rule_and_a_window_rides_through_one_lucky_epoch() -> None:
    assert _epochs_until_stop(EarlyStopping(patience=3), NOISY) == 6  # best at 0.6 (3rd), then 3 worse
    smoothed = EarlyStopping(patience=3, window=3)
    assert _epochs_until_stop(smoothed, NOISY) == len(NOISY)
    assert smoothed.best == pytest.approx((0.6 + 0.65 + 0.7) / 3)
    # lower is better (losses): the mirror image stops at the same epochs
    assert _epochs_until_stop(EarlyStopping(3, 1, greater_is_better=False), [-s for s in NOISY]) == 6
    assert _epochs_until_stop(EarlyStopping(3, 3, greater_is_better=False), [-s for s in NOISY]) == len(NOISY)
    # a plateau still stops a smoothed run, `window` epochs later at most
    assert _epochs_until_stop(EarlyStopping(2, 3), [0.1, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]) == 6
    assert _epochs_until_stop(EarlyStopping(0, 3), [0.5, 0.1, 0.1, 0.1]) == 4  # patience 0: never


# the validation MSE ratios of an erosion editor's first 12 epochs (runs/r, 2026-12-05): epoch 12 is its best
# single epoch, while the 3-epoch mean's best stays at epoch 6
EDITOR_RATIOS = [0.1336, 0.0996, 0.1053, 0.1045, 0.0991, 0.0929, 0.1229, 0.1080, 0.0965, 0.1052, 0.1105, 0.0887]


def test_a_new_best_single_epoch_resets_the_count_so_a_window_never_stops_earlier() -> None:
    # the rule before 2026-12-05 counted the mean alone and stopped this run at epoch 12, on its best epoch
    rule = EarlyStopping(patience=6, window=3, greater_is_better=False)
    assert _epochs_until_stop(rule, EDITOR_RATIOS) == len(EDITOR_RATIOS) and not rule.should_stop
    assert rule.bad_epochs == 0 and rule.best_raw == pytest.approx(0.0887)
    assert rule.best == pytest.approx((0.1045 + 0.0991 + 0.0929) / 3)
    gen = torch.Generator().manual_seed(3)
    for trial in range(200):  # random noisy curves, both directions: the window runs at least as long
        scores = (torch.rand(30, generator=gen) + torch.linspace(0, trial % 3, 30)).tolist()
        for greater in (True, False):
            plain = _epochs_until_stop(EarlyStopping(4, 1, greater), scores)
            for window in (2, 3, 5):
                assert _epochs_until_stop(EarlyStopping(4, window, greater), scores) >= plain


def test_states_saved_before_best_raw_existed_restore_it_from_their_scores() -> None:
    rule = EarlyStopping(patience=6, window=3, greater_is_better=False)
    for s in EDITOR_RATIOS[:11]:
        rule.update(s)
    old_state = {k: v for k, v in rule.state_dict().items() if k != "best_raw"}
    restored = EarlyStopping(patience=6, window=3, greater_is_better=False)
    restored.load_state_dict(old_state)
    assert restored.best_raw == pytest.approx(min(EDITOR_RATIOS[:11]))
    assert restored.update(EDITOR_RATIOS[11]) is False and rule.update(EDITOR_RATIOS[11]) is False
    assert (restored.best_raw, restored.bad_epochs) == (rule.best_raw, rule.bad_epochs)
    plain = EarlyStopping(patience=3)  # the plain rule's counter from a checkpoint older than the window
    plain.load_state_dict({"scores": [], "best": 0.6, "bad_epochs": 2})
    assert plain.best_raw == 0.6 and plain.update(0.55)  # worse than its best: the third bad epoch


def test_bad_settings_are_refused() -> None:
    with pytest.raises(TaskError, match="window"):  # a library error: the CLI prints it and exits 2
        EarlyStopping(patience=3, window=0)
    with pytest.raises(TaskError, match="patience"):
        EarlyStopping(patience=-1)
    with pytest.raises(TaskError, match="patience"):  # the Trainer refuses it before any work
        Trainer(ClassifyTask(), torch.nn.Linear(1, 1), TrainConfig(patience=-1), progress=False)


def _classify_set(n: int = 32) -> GraphSet:
    arch = mlp_architecture([2, 8, 1], "relu")
    flat = torch.randn(n, arch.num_parameters, generator=torch.Generator().manual_seed(0)) * 0.3
    return GraphSet([Group(arch, flat, torch.arange(n), torch.arange(n) % 2)])


class _ScriptedTask(ClassifyTask):
    """A classifier whose validation accuracy follows a script: call k (the untrained model is call 0) → scores[k]."""

    def __init__(self, scores: list[float]) -> None:
        super().__init__()
        self.num_classes, self.scores, self.calls = 2, scores, 0

    def metrics(self, predictions: torch.Tensor, targets: torch.Tensor) -> dict:
        out = super().metrics(predictions, targets)
        out["accuracy"] = self.scores[min(self.calls, len(self.scores) - 1)]
        self.calls += 1
        return out


def _trainer(scores: list[float], window: int, run_dir: Path | None = None) -> Trainer:
    torch.manual_seed(0)
    model = build_model("ng-gnn", out_dim=2, edge_dim=1, hidden=8, layers=1)
    cfg = TrainConfig(epochs=len(scores) - 1, batch_size=16, lr=3e-3, patience=3, stop_window=window)
    return Trainer(_ScriptedTask(scores), model, cfg, run_dir, progress=False)


@pytest.mark.parametrize(("window", "epochs_run", "best_epoch"), [(1, 5, 2), (3, 9, 8)])
def test_trainer_stops_on_the_smoothed_score_and_keeps_the_best_raw_epoch(window: int, epochs_run: int,
                                                                          best_epoch: int) -> None:
    data = _classify_set()
    # call 0 is the untrained model; epoch 2 is lucky; epoch 8 is the best single epoch, while the 3-epoch mean
    # peaks at epoch 9 (0.633 against 0.603): the kept model is epoch 8's
    scores = [0.05, 0.3, 0.6, 0.4, 0.45, 0.5, 0.55, 0.6, 0.66, 0.64]
    result = _trainer(scores, window).fit(data, data)
    assert result["epochs_run"] == epochs_run
    assert [h["val_accuracy"] for h in result["history"]] == scores[1:epochs_run + 1]
    assert result["best_epoch"] == best_epoch


class _Interrupt(Exception):
    """Raised to simulate a run killed between epochs."""


def test_resume_mid_run_keeps_the_smoothing_window(tmp_path: Path) -> None:
    data = _classify_set()
    scores = [0.05, *NOISY[1:]]
    full = _trainer(scores, 3, tmp_path / "full").fit(data, data)

    trainer = _trainer(scores, 3, tmp_path / "cut")
    evaluate = trainer.evaluate

    def dying(split: GraphSet) -> dict:
        if trainer.task.calls == 5:  # after epoch 4's checkpoint
            raise _Interrupt
        return evaluate(split)

    trainer.evaluate = dying
    with pytest.raises(_Interrupt):
        trainer.fit(data, data)
    ckpt = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)
    assert ckpt["stopping"]["scores"] == pytest.approx(scores[:5])

    resumed = _trainer(scores, 3, tmp_path / "cut")
    resumed.task.calls = 5  # the script continues where the killed run left it
    again = resumed.fit(data, data, resume=True)
    assert (again["epochs_run"], again["best_epoch"]) == (full["epochs_run"], full["best_epoch"])


def test_checkpoints_from_before_the_window_resume_with_the_plain_counter(tmp_path: Path) -> None:
    data = _classify_set()
    scores = [0.05, 0.6, 0.2, 0.2, 0.2, 0.2, 0.2]
    trainer = _trainer(scores[:3], 1, tmp_path / "old")  # two epochs, then "upgrade" the checkpoint to the old format
    trainer.fit(data, data)
    path = tmp_path / "old" / "checkpoint.pt"
    ckpt = torch.load(path, weights_only=True)
    stopping = ckpt.pop("stopping")
    ckpt["best"], ckpt["bad_epochs"] = stopping["best_raw"], stopping["bad_epochs"]
    torch.save(ckpt, path)

    resumed = _trainer(scores, 1, tmp_path / "old")
    resumed.task.calls = 3
    result = resumed.fit(data, data, resume=True)
    # one bad epoch carried over + two more = patience 3: stops after epoch 4, keeps epoch 1
    assert (result["epochs_run"], result["best_epoch"]) == (4, 1)


def test_a_run_saved_before_a_new_option_resumes_and_a_changed_option_is_named(tmp_path: Path) -> None:
    config = RunConfig(task="inr-classify", model="ng-gnn", zoo="z", model_config={},
                       train=TrainConfig(epochs=3).to_dict())
    from core.models import config_for

    config.model_config = config_for("ng-gnn").to_dict()
    saved = config.to_dict()
    saved["train"] = {k: v for k, v in saved["train"].items() if k != "stop_window"}  # written before the field
    (tmp_path / "config.json").write_text(json.dumps(saved))
    _check_same_run(tmp_path, config)  # the missing field reads as its default: the same run

    changed = RunConfig(**{**config.to_dict(), "train": TrainConfig(epochs=3, stop_window=4).to_dict()})
    with pytest.raises(TaskError, match=r"train\.stop_window"):
        _check_same_run(tmp_path, changed)


def test_an_nfn_run_saved_before_the_centred_head_is_not_resumed_with_it(tmp_path: Path) -> None:
    """An option whose default differs for old runs (nfn's `reference_centred`: missing reads as the paper's head)
    is a real difference: resuming with today's default would change the model, and the refusal names it."""
    from core.models import config_for

    model_config = config_for("nfn-np").to_dict()
    config = RunConfig(task="inr-classify", model="nfn-np", zoo="z", model_config=model_config,
                       train=TrainConfig().to_dict())
    saved = config.to_dict()
    saved["model_config"] = {k: v for k, v in model_config.items() if k != "reference_centred"}
    (tmp_path / "config.json").write_text(json.dumps(saved))
    with pytest.raises(TaskError, match=r"model_config\.reference_centred"):
        _check_same_run(tmp_path, config)
    plain = RunConfig(**{**config.to_dict(), "model_config": {**model_config, "reference_centred": False}})
    _check_same_run(tmp_path, plain)  # --no-reference-centred resumes it
