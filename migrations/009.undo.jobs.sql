DROP TABLE email_deliveries;
DROP TABLE job_events;
DROP TABLE jobs;
