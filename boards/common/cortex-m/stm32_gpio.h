/* STM32 GPIO alternate-function set-up (same GPIO block on F4, F7 and H7: RM0090 / RM0385 /
 * RM0399 "GPIO registers"). */
#ifndef TK_STM32_GPIO_H
#define TK_STM32_GPIO_H
#include <stdint.h>

#define TK_GPIO_MODER(port) (*(volatile uint32_t *)((port) + 0x00))
#define TK_GPIO_OSPEEDR(port) (*(volatile uint32_t *)((port) + 0x08))
#define TK_GPIO_AFR(port, i) (*(volatile uint32_t *)((port) + 0x20 + 4 * (i)))

/* Put `pin` of the GPIO port at `port` in alternate function `af`, high speed. */
static inline void tk_gpio_alternate(uint32_t port, unsigned pin, unsigned af)
{
    TK_GPIO_MODER(port) = (TK_GPIO_MODER(port) & ~(3u << (2 * pin))) | (2u << (2 * pin));
    TK_GPIO_OSPEEDR(port) |= 3u << (2 * pin);
    TK_GPIO_AFR(port, pin / 8) = (TK_GPIO_AFR(port, pin / 8) & ~(0xFu << (4 * (pin % 8)))) |
                                 ((uint32_t)af << (4 * (pin % 8)));
}
#endif
