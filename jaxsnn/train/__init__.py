"""ANN training: state, pure steps, sharding, checkpoints and the ``train_and_evaluate`` loop."""

from jaxsnn.train.loop import evaluate, train_and_evaluate, validate_config
from jaxsnn.train.state import TrainState, create_optimizer, create_schedule, create_train_state
from jaxsnn.train.steps import eval_step, project_thresholds, train_step

__all__ = [
    "TrainState",
    "create_optimizer",
    "create_schedule",
    "create_train_state",
    "eval_step",
    "evaluate",
    "project_thresholds",
    "train_and_evaluate",
    "train_step",
    "validate_config",
]
