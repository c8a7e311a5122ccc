"""train: the tagifai model with the best arguments, logged and registered in MLflow."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, ClassificationMetrics, Dataset, Input, Metrics, Model, Output

from tagifai.steps import default_image


@dsl.component(base_image=default_image("train"), install_kfp_package=False)
def train(
    dataset: Input[Dataset],
    best_args: Input[Artifact],
    seed: int,
    mlflow_tracking_uri: str,
    experiment_name: str,
    model_name: str,
    state_dir: str,
    model: Output[Model],
    metrics: Output[Metrics],
    confusion_matrix: Output[ClassificationMetrics],
    slice_metrics: Output[Metrics],
    test_data: Output[Dataset],
) -> NamedTuple("TrainOutputs", [("model_uri", str)]):
    """Train on the train (+ validation) split of ``dataset`` with the arguments in ``best_args``.

    The "other" threshold is chosen on validation data; the test split is scored only at the end.
    Logs params, metrics and the model to MLflow and registers it as a new version of ``model_name``;
    the run records its data from ``dataset``'s metadata (``table``, ``content_hash``, ``composition``):
    the dataset input (context ``training``), tags ``data_content_hash``, ``data_created_on_max``,
    ``data_policy``, artifacts ``data_composition.json`` and ``reference_predictions.json`` (predictions
    and confidences of the model on the test split).
    Writes: ``model`` (the MLflow model directory; metadata ``model_uri``, ``run_id``, ``threshold``),
    ``metrics`` (precision, recall, f1 on the test split), ``confusion_matrix``, ``slice_metrics``
    (per class and per slice: nlp_cnn, short_text), ``test_data`` (the test split, Parquet).
    Returns ``model_uri`` (``models:/<name>/<version>``).
    """
    import json
    from collections import namedtuple

    import pandas as pd

    from tagifai.artifacts import keep_values
    from tagifai.config import get_settings
    from tagifai.workflows import train_and_register

    s = get_settings(
        home=state_dir, mlflow_tracking_uri=mlflow_tracking_uri, experiment_name=experiment_name, model_name=model_name
    )
    with open(best_args.path, encoding="utf-8") as f:
        args = json.load(f)
    out = train_and_register(
        pd.read_parquet(dataset.path),
        args,
        seed,
        s.model_name,
        s.mlflow_tracking_uri,
        s.experiment_name,
        s.mlflow_artifact_root,
        dataset_hash=dataset.metadata.get("content_hash"),
        dataset_meta=dict(dataset.metadata),
    )
    import mlflow.sklearn

    from tagifai.tracking import pip_requirements

    # The pins the logged model has (without them MLflow infers them by loading the model in a subprocess: ~6 s).
    mlflow.sklearn.save_model(
        out.model, model.path, serialization_format="cloudpickle", pip_requirements=pip_requirements(out.model)
    )
    model.metadata.update(
        {"model_uri": out.model_uri, "run_id": out.run_id, "threshold": out.threshold, "classes": out.classes}
    )
    for name in ("precision", "recall", "f1", "num_samples"):
        metrics.log_metric(name, out.test["overall"][name])
    confusion_matrix.log_confusion_matrix(
        out.test["confusion_matrix"]["classes"], out.test["confusion_matrix"]["matrix"]
    )
    for group, key in (("class", "per_class"), ("slice", "slices")):
        for name, values in out.test[key].items():
            for metric, value in values.items():
                if value is not None:
                    slice_metrics.log_metric(f"{group}/{name}/{metric}", value)
    out.test_data.to_parquet(test_data.path, index=False)
    test_data.metadata["rows"] = len(out.test_data)
    keep_values(metrics, confusion_matrix, slice_metrics)  # a file at every output: kfp.local's cache can reuse it
    return namedtuple("TrainOutputs", ["model_uri"])(out.model_uri)
