"""`qomon-sync status | dlq | backfill`: the operators' commands.

They work the same against a deployed stack (`--stack NAME`, through CloudFormation's
outputs) and against local mode (`--local`, through its endpoints file). They need the
runtime package (qomon_sync), boto3 and tqdm: never the stand-in, moto or any other
developer tool (`pip install 'qomon-sync[ops]'`).
"""
