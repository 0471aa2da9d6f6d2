#!/usr/bin/env python3
"""The study's own training loop (Keras model.fit, one model at a time), kept here as the
benchmark's peer: bench/bench.py times it against circlereg on the same work.

One Keras model, model.fit with validation_data, then model.evaluate, as a user of the study
would run it. This is the project's copy of the study's script; its behaviour and flags are
unchanged, so timings stay comparable with earlier measurements of the study's loop.

    python bench/peer.py --variant pre --l1 0.0001 --epochs 4000 --seed 1

Prints one line: `<variant> seed=<s> Train: <acc>, Test: <acc> fit_s=<seconds> epochs=<n>`.
Needs tensorflow and scikit-learn; uses whatever Keras convention the installed release has.
"""
import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", choices=["baseline", "pre", "post"], default="baseline")
    ap.add_argument("--l1", type=float, default=1e-4, help="activity L1 strength")
    ap.add_argument("--epochs", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-validation", action="store_true",
                    help="skip the per-epoch test evaluation (no test curve)")
    args = ap.parse_args()

    import keras
    from keras import layers, regularizers
    from sklearn.datasets import make_circles

    keras.utils.set_random_seed(args.seed)
    X, y = make_circles(n_samples=100, noise=0.1, random_state=1)
    train_x, test_x, train_y, test_y = X[:30], X[30:], y[:30], y[30:]

    model = keras.Sequential([keras.Input((2,))])
    if args.variant == "baseline":
        model.add(layers.Dense(500, activation="relu"))
    elif args.variant == "pre":
        model.add(layers.Dense(500, activation="linear",
                               activity_regularizer=regularizers.l1(args.l1)))
        model.add(layers.Activation("relu"))
    else:
        model.add(layers.Dense(500, activation="relu",
                               activity_regularizer=regularizers.l1(args.l1)))
    model.add(layers.Dense(1, activation="sigmoid"))
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])

    fit_kwargs = {} if args.no_validation else {"validation_data": (test_x, test_y)}
    start = time.perf_counter()
    model.fit(train_x, train_y, epochs=args.epochs, verbose=0, **fit_kwargs)
    fit_s = time.perf_counter() - start
    _, train_acc = model.evaluate(train_x, train_y, verbose=0)
    _, test_acc = model.evaluate(test_x, test_y, verbose=0)
    print(f"{args.variant} seed={args.seed} Train: {train_acc:.3f}, Test: {test_acc:.3f} "
          f"fit_s={fit_s:.2f} epochs={args.epochs}")


if __name__ == "__main__":
    main()
