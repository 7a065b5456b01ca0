/*
 * modelcat: a catalog of LLM models, GPUs and benchmark results, and the
 * tools that produce the results. This file only dispatches commands.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

#ifndef MODELCAT_VERSION
#define MODELCAT_VERSION "0.0.0"
#endif

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
} commands[] = {
    {"serve", cli_serve, "serve the catalog REST API"},
    {"migrate", cli_migrate, "apply the schema migrations to the store"},
    {"seed", cli_seed, "load the demo catalog (--demo)"},
    {"config", cli_config, "print the effective settings"},
    {"sim", cli_sim, "run the inference engine simulator"},
    {"bench", cli_bench, "benchmark an LLM server (vLLM, TGI, LMDeploy, OpenAI, sim)"},
    {"worker", cli_worker, "take benchmark jobs from a modelcat API and run them"},
    {"backup", cli_backup, "back the store up (--to DIR|s3://...); list, verify"},
    {"restore", cli_restore, "restore a backup set into the store (FROM [--force])"},
    {"keys", cli_keys, "create, list and revoke API keys (create|list|revoke ID|generate)"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: modelcat <command> [flags]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\n`modelcat <command> --help` lists a command's settings.\n"
               "`modelcat --version` prints the version.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        printf("modelcat %s\n", MODELCAT_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "modelcat: unknown command '%s' (try modelcat --help)\n", argv[1]);
    return 2;
}
