"""Learning to optimise (l2o): inner problems, learned optimisers, meta-training, evaluation.

- problems: MLP classifiers on bundled data (digits, MNIST-5k), B inits trained in one tensor program
- optimizers: functional Adam / SGD+momentum, the coordinate-wise MLP and the equivariant graph optimiser
- meta: truncated back-propagation through unrolled inner training, rollouts, lr tuning
- evaluate: comparison table and loss curves; store: save/load; torch_optim: `LearnedOptimizer`
"""

from core.l2o.api import evaluate_runs, make_optimizer, train_optimizer, tune_baselines
from core.l2o.meta import MetaConfig, meta_train, rollout, tune_lr
from core.l2o.optimizers import Adam, GraphOptimizer, PerParamOptimizer, SGDMomentum
from core.l2o.problems import EVAL_SPECS, TRAIN_SPECS, L2OError, ProblemSpec, load_data, sample_problem
from core.l2o.store import load_optimizer, save_optimizer
from core.l2o.torch_optim import LearnedOptimizer

__all__ = [
    "Adam", "EVAL_SPECS", "GraphOptimizer", "L2OError", "LearnedOptimizer", "MetaConfig", "PerParamOptimizer",
    "ProblemSpec", "SGDMomentum", "TRAIN_SPECS", "evaluate_runs", "load_data", "load_optimizer", "make_optimizer",
    "meta_train", "rollout", "sample_problem", "save_optimizer", "train_optimizer", "tune_baselines", "tune_lr",
]
