"""UserMetadata keys that tie a MediaConvert job and its events to the host.

MediaConvert copies a job's ``UserMetadata`` into every event of that job, so
these keys are how the drain task recognises its own jobs and finds the host's
reference. Limits (MediaConvert): at most 10 pairs, keys up to 128 and values
up to 256 characters.
"""

#: The host application's reference for the job (for example a model's primary key).
REFERENCE_KEY = "mc_tasks_reference"
#: Marks a job as submitted by this application; its value is ``Settings.application``.
APPLICATION_KEY = "mc_tasks_application"
#: Stable id of the submission that created the job, also its ClientRequestToken.
SUBMISSION_KEY = "mc_tasks_submission"

#: MediaConvert UserMetadata limits.
MAX_METADATA_PAIRS = 10
MAX_METADATA_KEY_CHARS = 128
MAX_METADATA_VALUE_CHARS = 256
