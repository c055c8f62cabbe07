"""The local Spark 4.0 session with Delta that the delta package's Spark
checkers share (spark_features.py, recovery_check.py)."""

import tempfile

from delta import configure_spark_with_delta_pip
from pyspark.sql import SparkSession


def spark_session(app):
    builder = (SparkSession.builder.master("local[1]").appName(app)
               .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
               .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.ui.enabled", "false")
               .config("spark.sql.warehouse.dir", tempfile.mkdtemp(prefix="claimx-spark-wh-"))
               .config("spark.sql.shuffle.partitions", "1")
               .config("spark.databricks.delta.snapshotPartitions", "1")
               .config("spark.ui.showConsoleProgress", "false")
               # Small tables: make Spark write on-disk deletion vectors for
               # every DELETE rather than rewriting files.
               .config("spark.databricks.delta.deletionVectors.useMetadataRowIndex", "true"))
    spark = configure_spark_with_delta_pip(builder).getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark
