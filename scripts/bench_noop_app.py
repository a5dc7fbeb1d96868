"""A no-op Flask endpoint: the floor the serving benchmark compares /predict with."""

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.post("/predict")
def predict():  # noqa: ANN201
    request.get_json(force=True)
    return jsonify(prediction=0.0)
