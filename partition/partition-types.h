/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The partition types core/partition.c gives names to (type_name): MBR
 * type bytes and GPT type GUIDs, in the text form partition.c prints.
 * Only partition.c includes this.  Names are lower-case words joined by
 * '-'; several MBR types share a name when they mean the same thing to a
 * user (0x06, 0x0e: fat16).  Add entries freely; never rename one, since
 * scripts select partitions by these names.
 */
#ifndef BH_PARTITION_TYPES_H
#define BH_PARTITION_TYPES_H

#include <stdint.h>

static const struct { uint8_t type; const char *name; } mbr_names[] = {
    { 0x01, "fat12" }, { 0x04, "fat16" }, { 0x05, "extended" },
    { 0x06, "fat16" }, { 0x07, "ntfs" }, { 0x0b, "fat32" },
    { 0x0c, "fat32" }, { 0x0e, "fat16" }, { 0x0f, "extended" },
    { 0x27, "windows-recovery" }, { 0x82, "swap" }, { 0x83, "linux" },
    { 0x85, "extended" }, { 0x8e, "lvm" }, { 0xa5, "freebsd" },
    { 0xa6, "openbsd" }, { 0xa9, "netbsd" }, { 0xea, "linux-extended-boot" },
    { 0xee, "gpt-protective" }, { 0xef, "efi-system" }, { 0xfd, "raid" },
};

static const struct { const char *guid; const char *name; } gpt_names[] = {
    { "C12A7328-F81F-11D2-BA4B-00A0C93EC93B", "efi-system" },
    { "21686148-6449-6E6F-744E-656564454649", "bios-boot" },
    { "E3C9E316-0B5C-4DB8-817D-F92DF00215AE", "microsoft-reserved" },
    { "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7", "microsoft-basic-data" },
    { "DE94BBA4-06D1-4D40-A16A-BFD50179D6AC", "windows-recovery" },
    { "0FC63DAF-8483-4772-8E79-3D69D8477DE4", "linux" },
    { "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F", "swap" },
    { "E6D6D379-F507-44C2-A23C-238F2A3DF928", "lvm" },
    { "A19D880F-05FC-4D3B-A006-743F0F84911E", "raid" },
    { "933AC7E1-2EB4-4F13-B844-0E14E2AEF915", "linux-home" },
    { "3B8F8425-20E0-4F3B-907F-1A25A76F98E8", "linux-srv" },
    { "4D21B016-B534-45C2-A9FB-5C16E091FD2D", "linux-var" },
    { "7EC6F557-3BC5-4ACA-B293-16EF5DF639D1", "linux-tmp" },
    { "8DA63339-0007-60C0-C436-083AC8230908", "linux-reserved" },
    { "BC13C2FF-59E6-4262-A352-B275FD6F7172", "linux-extended-boot" },
    { "44479540-F297-41B2-9AF7-D131D5F0458A", "linux-root-x86" },
    { "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709", "linux-root-x86-64" },
    { "B921B045-1DF0-41C3-AF44-4C6F280D3FAE", "linux-root-arm64" },
    { "8484680C-9521-48C6-9C11-B0720656F69E", "linux-usr-x86-64" },
    { "516E7CB4-6ECF-11D6-8FF8-00022D09712B", "freebsd-data" },
    { "48465300-0000-11AA-AA11-00306543ECAC", "apple-hfs" },
    { "7C3457EF-0000-11AA-AA11-00306543ECAC", "apple-apfs" },
};

#endif
