"""Local compute: an algorithm — a preset or a team's own script algorithm — as a subprocess
under SageMaker's training-container contract (a container image algorithm needs SageMaker).

Each version runs in ``runs_dir/<backend job name>/``, laid out like ``/opt/ml``, with the
``SM_*`` environment of the SageMaker training toolkit
(https://github.com/aws/sagemaker-training-toolkit/blob/master/ENVIRONMENT_VARIABLES.md).
A monitor thread per run reports state changes in the shape of SageMaker's EventBridge
"Training Job State Change" event, so the same service code handles both backends.

- :mod:`.compute` — :class:`~.compute.LocalCompute`, the :class:`bot.ports.Compute` port;
- :mod:`.contract` — preparing a run folder as SageMaker prepares ``/opt/ml``: config files,
  environment, code copy (a preset's folder with the shared modules, a registered folder as
  it is), data channels, the command;
- :mod:`.plan` — how many processes on how many GPUs a version gets here;
- :mod:`.processes` — starting the training process so that it outlives the bot, and
  finding it again;
- :mod:`.supervisor` and :mod:`.watched` — the threads that watch runs and report them;
- :mod:`.detail` — a run's SageMaker-shaped job detail and the events made from it;
- :mod:`.runs` — a run's folder and files, readable by any process.

The package must stay light (it is imported on the Slack path): no torch, tensorboard, sklearn.
"""
