"""SageMaker compute: the :class:`bot.ports.Compute` port over boto3 (never the sagemaker SDK).

- :mod:`.request` builds the CreateTrainingJob request for a version (pure, no I/O);
- :mod:`.compute` is the port (:class:`~.compute.SageMakerCompute`): launch, stop, describe
  and the best-effort reads;
- :mod:`.logs` reads a job's CloudWatch streams and what its metric regexes find there;
- :mod:`.output` reads ``evaluation.json`` from the job's ``output.tar.gz``;
- :mod:`.errors` turns botocore failures into trainbot's :class:`~bot.domain.BackendError`.

State changes come back through EventBridge (``functions/job_events``), not from here.
"""
