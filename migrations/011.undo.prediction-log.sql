DROP TABLE prediction_log;
