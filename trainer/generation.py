"""The worker side of a generate run: sample the run's prompt file with its model and store one Generation per
response, with the run's summary (mean length, reward, KL, identity leaks) as its evaluation."""


def generate_execute(*, run, config: dict, output_dir, progress) -> dict:
    raise NotImplementedError("generate runs are being built")
