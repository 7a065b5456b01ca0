/*
 * The commands of the modelcat binary. Each takes argv with argv[0] the
 * command name and returns the process exit status: 0, 1 on a runtime
 * failure, 2 on a usage error.
 */
#ifndef MC_CLI_CLI_H
#define MC_CLI_CLI_H

int cli_serve(int argc, char **argv);
int cli_migrate(int argc, char **argv);
int cli_seed(int argc, char **argv);
int cli_config(int argc, char **argv);
int cli_sim(int argc, char **argv);
int cli_bench(int argc, char **argv);
int cli_keys(int argc, char **argv);
int cli_worker(int argc, char **argv);
int cli_backup(int argc, char **argv);
int cli_restore(int argc, char **argv);

struct cfg;
struct db;
/*
 * Shared start of every command: parses settings for cmd (exit 2 on a bad
 * flag, printing one line), handles --help, applies the log settings.
 * Returns -1 to go on, or the exit status to return now.
 */
int cli_setup(struct cfg *c, unsigned cmd, int argc, char **argv, const char *usage);
/* Opens the store named by the settings (pool of nconns); prints errors. */
int cli_open_db(const struct cfg *c, int nconns, struct db **out);

#endif
