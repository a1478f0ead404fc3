"""v2: jobs.processed_by, the release whose worker finished the job (nullable, so v1 code keeps
working on the v2 schema while a rolling deploy runs both).

Revision ID: 0002_job_processed_by
Revises: 0001_create_jobs
Create Date: 2025-02-03 09:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_job_processed_by"
down_revision = "0001_create_jobs"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("jobs", sa.Column("processed_by", sa.String(length=64), nullable=True))


def downgrade():
    op.drop_column("jobs", "processed_by")
