DROP TABLE provider_credentials;
DROP TABLE providers;
