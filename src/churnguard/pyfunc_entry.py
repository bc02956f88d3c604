"""MLflow models-from-code entry point: logged as the model's code, never imported by churnguard.

MLflow executes this file when the model is loaded; it declares the pyfunc whose
``predict`` returns calibrated churn probabilities (no pickled Python objects).
"""

import mlflow

from churnguard.tracking import pyfunc_class

mlflow.models.set_model(pyfunc_class()())
