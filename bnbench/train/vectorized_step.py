"""The compiled part of the vectorized trainer: S copies of one model as one JAX program.

Keras 3's JAX trainer exposes its training and evaluation steps as pure functions of a state
(`model.train_step(state, data)`, `model.test_step(state, data)`; state = trainable,
non-trainable, optimizer and metric variable values). Stacking every copy's values on a leading
seed axis and mapping those functions with `jax.vmap` trains the copies side by side in one
program: each keeps its own weights, BN moving statistics, dropout RNG (the layers'
`SeedGenerator` states are non-trainable variables, so they are stacked too), optimizer state
and metric sums. The steps between two evaluation points run as one `jax.lax.scan`, so a chunk
costs one dispatch from Python instead of one per step.

Divergence is per copy: a copy whose running loss turns non-finite keeps the state it had before
that step (`jnp.where` on every leaf) and its first bad step is recorded; the others go on.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class GroupEngine:
    """Trains and evaluates the stacked copies of one network.

    Args:
        models: One compiled Keras model per seed, each holding that seed's initial weights;
            all of one architecture. The first is the template whose step functions run.
        x_train: The training inputs, shared by every seed.
        y_train: The training targets.
        orders: One batch order per seed (`plan.batch_order`), stacked: (seeds, examples).
        batch_size: Examples per step.
        train_mode_model: A compiled functional wrapper over the template's layers that runs
            BN in training mode (`Evaluator._train_mode_model`), or None without BN layers.
    """

    def __init__(self, models: list[Any], x_train: np.ndarray, y_train: np.ndarray,
                 orders: np.ndarray, batch_size: int, train_mode_model: Any) -> None:  # fmt: skip
        import jax
        import jax.numpy as jnp

        self.template = models[0]
        self.seeds = len(models)
        self.batch_size = batch_size
        first = (x_train[:batch_size], y_train[:batch_size])
        for model in models:  # builds the optimizer and the metrics, as `fit` would
            model._symbolic_build(data_batch=first)
        self.state = (
            _stack(models, lambda m: m.trainable_variables),
            _stack(models, lambda m: m.non_trainable_variables),
            _stack(models, lambda m: m.optimizer.variables),
            _stack(models, lambda m: m.metrics_variables),
        )
        self._zero_metrics = self.state[3]  # before any step: every sum and count is zero
        self.x_train = jnp.asarray(x_train)
        self.y_train = jnp.asarray(y_train)
        self.orders = np.asarray(orders)
        self._chunk = jax.jit(self._chunk_fn)
        self._evaluators: dict[tuple[str, bool], Any] = {}
        self._wrapper = train_mode_model
        if train_mode_model is not None:
            train_mode_model._symbolic_build(data_batch=first)
            self._wrapper_state = _wrapper_state(self.template, train_mode_model)

    def _chunk_fn(self, state: Any, index: Any, alive: Any) -> Any:
        """Steps of one chunk for every seed: (state, alive, first bad step, last logs)."""
        import jax
        import jax.numpy as jnp

        model, x, y = self.template, self.x_train, self.y_train

        def one(copy_state: Any, batch: Any) -> Any:
            return model.train_step(copy_state, (x[batch], y[batch]))

        def body(carry: Any, step: Any) -> Any:
            state, alive, bad = carry
            batch, number = step
            logs, new = jax.vmap(one)(state, batch)
            ok = alive & jnp.isfinite(logs["loss"])
            bad = jnp.where(alive & ~ok, number, bad)
            kept = jax.tree_util.tree_map(lambda n, o: _where(ok, n, o), new, state)
            return (kept, ok, bad), logs

        steps = index.shape[1]
        bad = jnp.full((self.seeds,), -1, dtype=jnp.int32)
        numbers = jnp.arange(1, steps + 1, dtype=jnp.int32)
        (state, alive, bad), logs = jax.lax.scan(
            body, (state, alive, bad), (jnp.swapaxes(index, 0, 1), numbers)
        )
        return state, alive, bad, jax.tree_util.tree_map(lambda v: v[-1], logs)

    def fit(self, start: int, stop: int, alive: np.ndarray) -> tuple[Any, Any, dict[str, Any]]:
        """Train steps `start`..`stop` of every live seed.

        Returns:
            (alive after the chunk, the step at which each seed turned non-finite or -1, the
            chunk's running-mean loss and metrics per seed, as `fit`'s last log reports them).
        """
        import jax.numpy as jnp

        batch = self.batch_size
        index = self.orders[:, start * batch : stop * batch].reshape(self.seeds, -1, batch)
        trainable, non_trainable, optimizer, _ = self.state
        state = (trainable, non_trainable, optimizer, self._zero_metrics)  # fit resets metrics
        state, alive_now, bad, logs = self._chunk(state, jnp.asarray(index), jnp.asarray(alive))
        self.state = state
        bad = np.asarray(bad)
        bad = np.where(bad >= 0, bad + start, -1)
        return np.asarray(alive_now), bad, {k: np.asarray(v) for k, v in logs.items()}

    def evaluate(self, x: np.ndarray, y: np.ndarray, batch_size: int, train_mode: bool = False,
                 per_seed: bool = False) -> dict[str, np.ndarray]:  # fmt: skip
        """Loss and metrics of every seed over (x, y), as `model.evaluate` gives them.

        Args:
            x: The inputs; with `per_seed`, one array per seed stacked on a leading axis.
            y: The targets, likewise.
            batch_size: Examples per evaluation batch (the last may be shorter).
            train_mode: BN normalizes each batch with its own statistics (the run's
                `Evaluator.train_mode`); the moving statistics are left as they were.
            per_seed: x and y have a seed axis.
        """
        import jax.numpy as jnp

        mode = train_mode and self._wrapper is not None
        function = self._evaluator(mode, per_seed)
        trainable, non_trainable, _, _ = self.state
        if mode:
            trainable, non_trainable = self._wrapper_state(trainable, non_trainable)
            metrics = _stack([self._wrapper] * self.seeds, lambda m: m.metrics_variables)
        else:
            metrics = self._zero_metrics
        length = x.shape[1] if per_seed else len(x)
        logs: dict[str, Any] = {}
        for begin in range(0, length, batch_size):
            part = slice(begin, begin + batch_size)
            xb, yb = (x[:, part], y[:, part]) if per_seed else (x[part], y[part])
            logs, metrics = function(trainable, non_trainable, metrics, jnp.asarray(xb),
                                     jnp.asarray(yb))  # fmt: skip
        return {k: np.asarray(v, dtype=np.float64) for k, v in logs.items()}

    def _evaluator(self, train_mode: bool, per_seed: bool) -> Any:
        """The jitted, vmapped `test_step` of the model (or of the train-mode wrapper)."""
        import jax

        key = (("train_mode" if train_mode else "moving"), per_seed)
        if key not in self._evaluators:
            model = self._wrapper if train_mode else self.template

            def one(trainable: Any, non_trainable: Any, metrics: Any, x: Any, y: Any) -> Any:
                # The non-trainable updates (BN in training mode) are dropped: the moving
                # statistics stay as training left them, as `Evaluator._restored` does.
                logs, (_, _, metrics) = model.test_step((trainable, non_trainable, metrics),
                                                        (x, y))  # fmt: skip
                return logs, metrics

            data_axis = 0 if per_seed else None
            mapped = jax.vmap(one, in_axes=(0, 0, 0, data_axis, data_axis))
            self._evaluators[key] = jax.jit(mapped)
        return self._evaluators[key]

    def assign(self, seed: int, model: Any) -> None:
        """Write seed `seed`'s trained state into `model` (to save it)."""
        trainable, non_trainable, optimizer, _ = self.state
        for variables, values in ((model.trainable_variables, trainable),
                                  (model.non_trainable_variables, non_trainable),
                                  (model.optimizer.variables, optimizer)):  # fmt: skip
            for variable, value in zip(variables, values, strict=True):
                variable.assign(np.asarray(value[seed]))


def _stack(models: list[Any], variables: Any) -> list[Any]:
    """Each variable's values over `models`, stacked on a new leading (seed) axis."""
    import jax.numpy as jnp

    columns = zip(*[[v.value for v in variables(m)] for m in models], strict=True)
    return [jnp.stack(values) for values in columns]


def _where(ok: Any, new: Any, old: Any) -> Any:
    import jax.numpy as jnp

    return jnp.where(ok.reshape(ok.shape + (1,) * (new.ndim - 1)), new, old)


def _wrapper_state(model: Any, wrapper: Any) -> Any:
    """A function from the model's stacked variable values to the wrapper's: the wrapper shares
    the model's layers (so its variables), possibly listed in another order."""
    own = [*model.trainable_variables, *model.non_trainable_variables]
    where = {id(v): i for i, v in enumerate(own)}
    picks = ([where[id(v)] for v in wrapper.trainable_variables],
             [where[id(v)] for v in wrapper.non_trainable_variables])  # fmt: skip
    if len(picks[0]) + len(picks[1]) != len(own):
        raise RuntimeError("the train-mode wrapper does not hold exactly the model's variables")

    def convert(trainable: list[Any], non_trainable: list[Any]) -> tuple[list[Any], list[Any]]:
        values = [*trainable, *non_trainable]
        return [values[i] for i in picks[0]], [values[i] for i in picks[1]]

    return convert
