"""Initial schema: submissions, jobs, reports, findings, audit log, outbox, processed events.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_head',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('audit_log',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('subject_kind', sa.String(length=16), nullable=False),
    sa.Column('subject_id', sa.String(length=200), nullable=False),
    sa.Column('details', sa.Text(), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('seq')
    )
    op.create_index('ix_audit_log_subject', 'audit_log', ['subject_kind', 'seq'], unique=False)
    op.create_table('findings',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('finding_id', sa.String(length=64), nullable=False),
    sa.Column('title', sa.Text(), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('evidence', sa.Text(), nullable=False),
    sa.Column('state', sa.String(length=32), nullable=False),
    sa.Column('embargo_state', sa.String(length=32), nullable=False),
    sa.Column('embargo_end', sa.DateTime(timezone=True), nullable=True),
    sa.Column('remediation_due', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cwe_ids', sa.Text(), nullable=False),
    sa.Column('affected', sa.Text(), nullable=False),
    sa.Column('location_file', sa.Text(), nullable=False),
    sa.Column('location_function', sa.Text(), nullable=False),
    sa.Column('location_line', sa.Integer(), nullable=False),
    sa.Column('cvss_v3_vector', sa.String(length=200), nullable=False),
    sa.Column('cvss_v3_score', sa.Float(), nullable=False),
    sa.Column('cvss_v3_rating', sa.String(length=16), nullable=True),
    sa.Column('cvss_v4_vector', sa.String(length=200), nullable=False),
    sa.Column('cvss_v4_score', sa.Float(), nullable=False),
    sa.Column('cvss_v4_rating', sa.String(length=16), nullable=True),
    sa.Column('severity', sa.String(length=16), nullable=True),
    sa.Column('tlp', sa.String(length=16), nullable=False),
    sa.Column('audience_organisations', sa.Text(), nullable=False),
    sa.Column('audience_sectors', sa.Text(), nullable=False),
    sa.Column('sharing_key', sa.String(length=64), nullable=False),
    sa.Column('origin', sa.String(length=16), nullable=False),
    sa.Column('reporter_id', sa.String(length=200), nullable=False),
    sa.Column('reporter_organisation', sa.String(length=200), nullable=False),
    sa.Column('submission_id', sa.String(length=200), nullable=True),
    sa.Column('request_id', sa.String(length=200), nullable=True),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('link_kind', sa.String(length=16), nullable=True),
    sa.Column('link_target', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('published_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('seq'),
    sa.UniqueConstraint('finding_id'),
    sa.UniqueConstraint('reporter_id', 'request_id', name='uq_findings_request')
    )
    op.create_index('ix_findings_dedup', 'findings', ['fingerprint', 'sharing_key'], unique=False)
    op.create_index(op.f('ix_findings_submission_id'), 'findings', ['submission_id'], unique=False)
    op.create_index('ix_findings_updated_at', 'findings', ['updated_at'], unique=False)
    op.create_table('jobs',
    sa.Column('job_id', sa.String(length=200), nullable=False),
    sa.Column('submission_id', sa.String(length=200), nullable=False),
    sa.Column('suite_id', sa.String(length=200), nullable=False),
    sa.Column('suite_version', sa.String(length=200), nullable=False),
    sa.Column('capability', sa.String(length=200), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('requested', sa.Boolean(), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=True),
    sa.Column('tasks', sa.Text(), nullable=False),
    sa.Column('eval_log_uri', sa.Text(), nullable=False),
    sa.Column('failure_reason', sa.String(length=200), nullable=False),
    sa.Column('failure_message', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('job_id')
    )
    op.create_index(op.f('ix_jobs_submission_id'), 'jobs', ['submission_id'], unique=False)
    op.create_table('outbox',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('topic', sa.String(length=255), nullable=False),
    sa.Column('event_id', sa.String(length=200), nullable=False),
    sa.Column('event_type', sa.String(length=255), nullable=False),
    sa.Column('key', sa.LargeBinary(), nullable=False),
    sa.Column('value', sa.LargeBinary(), nullable=False),
    sa.Column('headers', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_outbox_sent_at'), 'outbox', ['sent_at'], unique=False)
    op.create_table('processed_events',
    sa.Column('consumer', sa.String(length=200), nullable=False),
    sa.Column('event_id', sa.String(length=200), nullable=False),
    sa.Column('processed_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.PrimaryKeyConstraint('consumer', 'event_id')
    )
    op.create_table('signing_keys',
    sa.Column('key_id', sa.String(length=64), nullable=False),
    sa.Column('public_key', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key_id')
    )
    op.create_table('submissions',
    sa.Column('submission_id', sa.String(length=200), nullable=False),
    sa.Column('organisation', sa.String(length=200), nullable=False),
    sa.Column('model_name', sa.Text(), nullable=False),
    sa.Column('model_version', sa.Text(), nullable=False),
    sa.Column('share_identity', sa.Boolean(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('submission_id')
    )
    op.create_table('finding_audience',
    sa.Column('finding_id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('value', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['finding_id'], ['findings.finding_id'], ),
    sa.PrimaryKeyConstraint('finding_id', 'kind', 'value')
    )
    op.create_index('ix_finding_audience_value', 'finding_audience', ['kind', 'value'], unique=False)
    op.create_table('patch_statuses',
    sa.Column('finding_id', sa.String(length=64), nullable=False),
    sa.Column('organisation', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('updated_by', sa.String(length=200), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['finding_id'], ['findings.finding_id'], ),
    sa.PrimaryKeyConstraint('finding_id', 'organisation')
    )
    op.create_table('reports',
    sa.Column('report_id', sa.String(length=64), nullable=False),
    sa.Column('submission_id', sa.String(length=200), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('tier', sa.String(length=200), nullable=False),
    sa.Column('policy_id', sa.String(length=200), nullable=False),
    sa.Column('policy_version', sa.String(length=200), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('body', sa.LargeBinary(), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('signature', sa.LargeBinary(), nullable=False),
    sa.Column('signing_key_id', sa.String(length=64), nullable=False),
    sa.Column('issued_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['signing_key_id'], ['signing_keys.key_id'], ),
    sa.PrimaryKeyConstraint('report_id'),
    sa.UniqueConstraint('submission_id', 'version', name='uq_reports_submission_version')
    )
    op.create_table('review_states',
    sa.Column('submission_id', sa.String(length=200), nullable=False),
    sa.Column('complete_since', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('submission_id')
    )
    op.create_index(op.f('ix_review_states_complete_since'), 'review_states', ['complete_since'], unique=False)
    op.create_table('report_notes',
    sa.Column('note_id', sa.String(length=64), nullable=False),
    sa.Column('report_id', sa.String(length=64), nullable=False),
    sa.Column('author_id', sa.String(length=200), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['report_id'], ['reports.report_id'], ),
    sa.PrimaryKeyConstraint('note_id')
    )
    op.create_index(op.f('ix_report_notes_report_id'), 'report_notes', ['report_id'], unique=False)
    op.create_table('report_sign_offs',
    sa.Column('report_id', sa.String(length=64), nullable=False),
    sa.Column('reviewer_id', sa.String(length=200), nullable=False),
    sa.Column('comment', sa.Text(), nullable=False),
    sa.Column('signed_off_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['report_id'], ['reports.report_id'], ),
    sa.PrimaryKeyConstraint('report_id', 'reviewer_id')
    )
    op.bulk_insert(
        sa.table("audit_head", sa.column("id", sa.Integer), sa.column("seq", sa.BigInteger), sa.column("hash", sa.String)),
        [{"id": 1, "seq": 0, "hash": "0" * 64}],
    )


def downgrade() -> None:
    op.drop_table('report_sign_offs')
    op.drop_index(op.f('ix_review_states_complete_since'), table_name='review_states')
    op.drop_table('review_states')
    op.drop_index(op.f('ix_report_notes_report_id'), table_name='report_notes')
    op.drop_table('report_notes')
    op.drop_table('reports')
    op.drop_table('patch_statuses')
    op.drop_index('ix_finding_audience_value', table_name='finding_audience')
    op.drop_table('finding_audience')
    op.drop_table('submissions')
    op.drop_table('signing_keys')
    op.drop_table('processed_events')
    op.drop_index(op.f('ix_outbox_sent_at'), table_name='outbox')
    op.drop_table('outbox')
    op.drop_index(op.f('ix_jobs_submission_id'), table_name='jobs')
    op.drop_table('jobs')
    op.drop_index('ix_findings_updated_at', table_name='findings')
    op.drop_index(op.f('ix_findings_submission_id'), table_name='findings')
    op.drop_index('ix_findings_dedup', table_name='findings')
    op.drop_table('findings')
    op.drop_index('ix_audit_log_subject', table_name='audit_log')
    op.drop_table('audit_log')
    op.drop_table('audit_head')
