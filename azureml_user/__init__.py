"""Azure ML's runtime-only ``azureml_user`` package, provided by daskprs (it is not on PyPI).

Entry scripts written for ParallelRunStep do ``from azureml_user.parallel_run import
EntryScript``; daskprs puts this package on every worker so they run unchanged.
"""
