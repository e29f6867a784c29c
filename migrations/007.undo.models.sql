DROP TABLE model_versions, models;
