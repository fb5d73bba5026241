"""What a run may ask for in its project: models it may load (trainer.model_paths) and sizes within the project's
limits (settings.TANDEM_RUN_LIMITS, with the overrides a superuser set in trainer.models.ProjectRunLimits)."""

from django.conf import settings

from trainer.configs import RUN_LIMIT_FIELDS, ConfigError, limit_errors
from trainer.model_paths import config_models_resolve
from trainer.models import ProjectRunLimits


def run_limits(*, project_id: int) -> dict[str, int]:
    """Each bounded field's limit in this project: its override where a superuser set one, else the server's."""
    limits = {
        name: int(settings.TANDEM_RUN_LIMITS[name]) for name in RUN_LIMIT_FIELDS if name in settings.TANDEM_RUN_LIMITS
    }
    override = ProjectRunLimits.objects.filter(project_id=project_id).first()
    if override is not None:
        limits.update(override.overrides())
    return limits


def run_config_confine(*, kind: str, config: dict, project_id: int) -> dict:
    """A validated config as it is stored (model fields resolved), or ConfigError naming every model refused and
    every size over its limit. Called by trainer.services.runs.run_start before anything is stored or queued."""
    errors = {}
    try:
        config, _ = config_models_resolve(kind=kind, config=config, project_id=project_id)
    except ConfigError as exc:
        errors.update(exc.errors)
    errors.update(limit_errors(config, run_limits(project_id=project_id)))
    if errors:
        raise ConfigError(errors)
    return config
