/* disco-h747i external memories (variant ext-mem, TK_EXT_MEM): the IS42S32800J SDRAM on FMC SDRAM
 * bank 2 (0xD0000000, 32 MB) and the two MT25QL512ABB NOR flashes in dual-flash QUADSPI
 * memory-mapped mode (0x90000000, 128 MB). Written for the reset clock (HSI 64 MHz = HCLK3, the
 * kernel clock of both FMC and QUADSPI); it must be revisited if the board ever programs a PLL. */
#ifndef TK_DISCO_H747I_EXT_MEM_H
#define TK_DISCO_H747I_EXT_MEM_H

/* Pins, clocks, the FMC SDRAM controller and the JEDEC init sequence, an MPU region that makes the
 * SDRAM Normal memory, then QUADSPI memory-mapped reads. Returns 0 when done, or a nonzero code
 * when a controller never became ready or the SDRAM did not read back what was written; then
 * *what names the failed step. Call once, before anything touches 0x90000000 or 0xD0000000. */
int tk_ext_mem_init(const char **what);

#endif
