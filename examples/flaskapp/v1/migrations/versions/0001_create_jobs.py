"""v1: the jobs table.

Revision ID: 0001_create_jobs
Revises:
Create Date: 2025-01-06 09:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_create_jobs"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("original_size", sa.Integer(), nullable=False),
        sa.Column("compressed_size", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("idx_jobs_status_created", "jobs", ["status", "created_at"])


def downgrade():
    op.drop_index("idx_jobs_status_created", table_name="jobs")
    op.drop_table("jobs")
