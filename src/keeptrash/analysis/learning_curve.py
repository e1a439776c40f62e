"""Does more data close the gap? The train params refitted on growing subsets of the training split."""

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.model_selection import train_test_split

from keeptrash.params import TrainParams
from keeptrash.model.training import NOISE_COPY, decision_threshold, fit_classifier, training_inputs

TRAINING_SIZES = (50, 100, 200)


def learning_curve(table: pd.DataFrame, params: TrainParams, noise_copies: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per training-set size (50, 100, 200, ..., all; a stratified sample of the train split): accuracy on
    train and validation, validation and test ROC AUC. Validation and test rows never change; the noisy copies
    used are those of the sample's photos."""
    # Row positions, not copies of the rows: at AVA scale each copy of the table is gigabytes.
    training = (table["split"] == "train").to_numpy()
    train, held_out = np.flatnonzero(training), np.flatnonzero(~training)
    rows = []
    for size in [size for size in TRAINING_SIZES if size < len(train)] + [len(train)]:
        if size == len(train):
            pool = table
        else:
            subset = train_test_split(train, train_size=size, stratify=table["label"].to_numpy()[train], random_state=params.seed)[0]
            pool = table.iloc[np.concatenate([subset, held_out])].reset_index(drop=True)
        _, inputs, columns = training_inputs(pool, params, noise_copies)
        fitted, val, test = (inputs[inputs["split"] == split] for split in ("train", "val", "test"))
        model = fit_classifier(fitted, val, columns, params, inputs[inputs["split"] == NOISE_COPY])
        threshold = decision_threshold(model, val, columns, params)

        def scores(rows: pd.DataFrame) -> tuple[float, float]:
            probabilities = model.predict_proba(rows[columns])[:, 1]
            return accuracy_score(rows["label"], probabilities >= threshold), roc_auc_score(rows["label"], probabilities)

        (train_accuracy, _), (val_accuracy, val_auc), (test_accuracy, test_auc) = scores(fitted), scores(val), scores(test)
        rows.append(
            {
                "train_photos": size,
                "train_accuracy": train_accuracy,
                "val_accuracy": val_accuracy,
                "test_accuracy": test_accuracy,
                "val_roc_auc": val_auc,
                "test_roc_auc": test_auc,
                "gap": 100 * (train_accuracy - val_accuracy),
            }
        )
    return pd.DataFrame(rows).round(4)
