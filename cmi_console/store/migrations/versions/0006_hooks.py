"""hook deliveries: the event hooks' outbox

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hook_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("hook", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.String(length=32), nullable=False),
        sa.Column("updated_at", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(["seq"], ["audit_entries.seq"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("seq", "hook"),
    )
    with op.batch_alter_table("hook_deliveries", schema=None) as batch_op:
        batch_op.create_index("ix_hook_deliveries_status", ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("hook_deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_hook_deliveries_status")
    op.drop_table("hook_deliveries")
